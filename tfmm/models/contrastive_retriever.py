import keras

from tfmm.layers import ContrastiveHead
from tfmm.losses import CONTRASTIVE_LOSSES
from tfmm.models.task import Task


@keras.saving.register_keras_serializable(package="tfmm")
class ContrastiveRetriever(Task):
    """The retrieval task: a `CLIPBackbone` plus its learnable temperature and contrastive loss.

    Trained with `model.fit` on `{"images", "token_ids", "padding_mask"}` with no
    targets: row i of images and texts is a positive pair, every other row a negative.
    Under a multi-replica strategy the loss sees the global batch (see `tfmm.losses`).
    """

    def __init__(self, backbone, loss="infonce", logit_scale_init=1 / 0.07, logit_scale_max=100.0, triplet_margin=0.2, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.layers.deserialize(backbone)
        self.backbone = backbone
        self.head = ContrastiveHead(logit_scale_init, logit_scale_max, name="contrastive_head")
        self.loss_name = loss
        self.loss_fn = CONTRASTIVE_LOSSES.get(loss, "model.loss")
        inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name) for name, t in backbone.input.items()}
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.head.build()
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max
        self.triplet_margin = triplet_margin

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        del x, y, sample_weight, training
        loss = self.loss_fn(y_pred["image_embedding"], y_pred["text_embedding"], self.head.scale(), margin=self.triplet_margin)
        losses = self.losses  # regularisers, if any encoder has them
        return loss + sum(losses) if losses else loss

    def similarity(self, image_embedding, text_embedding):
        return self.head(image_embedding, text_embedding)

    def get_config(self):
        return {
            "name": self.name,
            "backbone": keras.layers.serialize(self.backbone),
            "loss": self.loss_name,
            "logit_scale_init": self.logit_scale_init,
            "logit_scale_max": self.logit_scale_max,
            "triplet_margin": self.triplet_margin,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
