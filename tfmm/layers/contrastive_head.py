import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class ContrastiveHead(keras.layers.Layer):
    """Similarity logits `scale * image @ text^T` with a learnable temperature.

    As in CLIP, the scale is learnt as a log, starts at `logit_scale_init` (1/0.07)
    and is clipped at `logit_scale_max` (100). With `logit_bias_init` (SigLIP's sigmoid loss) a
    learnable bias is added to the logits the loss sees. Always float32.
    """

    def __init__(self, logit_scale_init=1 / 0.07, logit_scale_max=100.0, logit_bias_init=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max
        self.logit_bias_init = logit_bias_init

    def build(self, input_shape=None):
        self.log_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(self.logit_scale_init)), name="log_scale"
        )
        self.logit_bias = None if self.logit_bias_init is None else self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.logit_bias_init), name="logit_bias")

    def scale(self):
        return ops.minimum(ops.exp(self.log_scale), self.logit_scale_max)

    def bias(self):
        return 0.0 if self.logit_bias is None else self.logit_bias

    def call(self, image_embedding, text_embedding):
        image_embedding = ops.cast(image_embedding, "float32")
        text_embedding = ops.cast(text_embedding, "float32")
        return self.scale() * ops.matmul(image_embedding, ops.transpose(text_embedding))

    def get_config(self):
        config = {**super().get_config(), "logit_scale_init": self.logit_scale_init, "logit_scale_max": self.logit_scale_max,
                  "logit_bias_init": self.logit_bias_init}
        config.pop("dtype", None)
        return config
