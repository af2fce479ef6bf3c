import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-codebook vector quantisation (VQ-VAE), with straight-through gradients.

    `call(z)` with z (..., code_dim) → `quantized` (same shape: the nearest code, with the gradient
    of z passed straight through) and `indices` (...,) int32. It adds its losses with `add_loss`:
    β·‖z − sg(q)‖² (commitment) always, and ‖sg(z) − q‖² (codebook) when the codebook is learnt by
    gradient. With `ema_decay` > 0 the codebook is instead an exponential moving average of the
    vectors assigned to each code (van den Oord et al., appendix), and codes whose average count
    falls below `restart_threshold` are restarted on random encoder outputs of the batch, so that
    no code stays dead.
    """

    def __init__(self, num_codes, code_dim, beta=0.25, ema_decay=0.0, restart_threshold=0.5, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, beta
        self.ema_decay, self.restart_threshold, self.seed = ema_decay, restart_threshold, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        ema = self.ema_decay > 0
        self.codebook = self.add_weight(shape=(self.num_codes, self.code_dim), name="codebook", trainable=not ema,
                                        initializer=keras.initializers.RandomUniform(-1.0 / self.num_codes, 1.0 / self.num_codes))
        if ema:
            self.cluster_size = self.add_weight(shape=(self.num_codes,), name="cluster_size", trainable=False,
                                                initializer="ones")
            self.code_sum = self.add_weight(shape=(self.num_codes, self.code_dim), name="code_sum", trainable=False,
                                            initializer="zeros")

    def nearest(self, flat):
        """Index of the nearest code for each row of `flat` (n, code_dim)."""
        codebook = ops.cast(self.codebook, flat.dtype)
        distances = (ops.sum(flat**2, axis=1, keepdims=True) - 2 * ops.matmul(flat, ops.transpose(codebook))
                     + ops.sum(codebook**2, axis=1)[None])
        return ops.cast(ops.argmin(distances, axis=1), "int32")

    def lookup(self, indices):
        """Codes for an index tensor of any shape → (..., code_dim)."""
        return ops.take(self.codebook, indices, axis=0)

    def call(self, z, training=None):
        z32 = ops.cast(z, "float32")
        flat = ops.reshape(z32, (-1, self.code_dim))
        indices = self.nearest(flat)
        if training and self.ema_decay > 0:
            self._update_codebook(flat, indices)
        quantized = ops.reshape(ops.cast(self.lookup(indices), "float32"), ops.shape(z32))
        commitment = ops.mean(ops.square(z32 - ops.stop_gradient(quantized)))
        self.add_loss(self.beta * commitment)
        if self.ema_decay == 0:
            self.add_loss(ops.mean(ops.square(ops.stop_gradient(z32) - quantized)))
        straight_through = z32 + ops.stop_gradient(quantized - z32)
        return {"quantized": ops.cast(straight_through, z.dtype), "indices": ops.reshape(indices, ops.shape(z)[:-1])}

    def _update_codebook(self, flat, indices):
        decay, flat = self.ema_decay, ops.stop_gradient(flat)
        assigned = ops.one_hot(indices, self.num_codes)  # (n, codes)
        cluster_size = decay * self.cluster_size + (1 - decay) * ops.sum(assigned, axis=0)
        code_sum = decay * self.code_sum + (1 - decay) * ops.matmul(ops.transpose(assigned), flat)
        total = ops.sum(cluster_size)
        smoothed = (cluster_size + 1e-5) / (total + self.num_codes * 1e-5) * total  # Laplace smoothing: no division by 0
        codebook = code_sum / smoothed[:, None]
        # Dead codes restart on random vectors of this batch (and count as used once).
        dead = cluster_size < self.restart_threshold
        picks = keras.random.randint((self.num_codes,), 0, ops.shape(flat)[0], seed=self.seed_generator)
        fresh = ops.take(flat, picks, axis=0)
        self.codebook.assign(ops.where(dead[:, None], fresh, codebook))
        self.code_sum.assign(ops.where(dead[:, None], fresh, code_sum))
        self.cluster_size.assign(ops.where(dead, ops.ones_like(cluster_size), cluster_size))

    def compute_output_spec(self, z, training=None):
        return {"quantized": keras.KerasTensor(z.shape, z.dtype), "indices": keras.KerasTensor(z.shape[:-1], "int32")}

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes, "code_dim": self.code_dim, "beta": self.beta,
                "ema_decay": self.ema_decay, "restart_threshold": self.restart_threshold, "seed": self.seed}
