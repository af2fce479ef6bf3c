import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class ContrastiveHead(keras.layers.Layer):
    """Similarity logits `scale * image @ text^T` with a learnable temperature.

    As in CLIP, the scale is learnt as a log, starts at `logit_scale_init` (1/0.07)
    and is clipped at `logit_scale_max` (100). Always float32.
    """

    def __init__(self, logit_scale_init=1 / 0.07, logit_scale_max=100.0, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max

    def build(self, input_shape=None):
        self.log_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(self.logit_scale_init)), name="log_scale"
        )

    def scale(self):
        return ops.minimum(ops.exp(self.log_scale), self.logit_scale_max)

    def call(self, image_embedding, text_embedding):
        image_embedding = ops.cast(image_embedding, "float32")
        text_embedding = ops.cast(text_embedding, "float32")
        return self.scale() * ops.matmul(image_embedding, ops.transpose(text_embedding))

    def get_config(self):
        config = {**super().get_config(), "logit_scale_init": self.logit_scale_init, "logit_scale_max": self.logit_scale_max}
        config.pop("dtype", None)
        return config
