import keras
import numpy as np
import tensorflow as tf

from tfmm.data.mixing import MIX_PARTNER, MIX_WEIGHT
from tfmm.errors import TfmmError
from tfmm.layers import ContrastiveHead
from tfmm.losses import CONTRASTIVE_LOSSES
from tfmm.models.clip_backbone import CLIPBackbone
from tfmm.models.contrastive_retriever_preprocessor import ContrastiveRetrieverPreprocessor
from tfmm.models.task import Task, check_images

DEFAULT_TEMPLATES = ("a {}", "a picture of a {}", "there is a {}", "an image showing a {}", "just a {}")


def check_templates(templates, field="templates"):
    for template in templates:
        if template.count("{}") != 1:
            raise TfmmError(f"{field}: {template!r} must contain '{{}}' exactly once")
    if not templates:
        raise TfmmError(f"{field} is empty")
    return list(templates)


@keras.saving.register_keras_serializable(package="tfmm")
class ContrastiveRetriever(Task):
    """The retrieval task: a `CLIPBackbone` plus its learnable temperature and contrastive loss.

    Trained with `fit` on `{"images", "text"}` batches with no targets: row i of images and texts is
    a positive pair, every other row a negative (with MixUp/CutMix, the targets `mix_partner` and
    `mix_weight` make image i part text i, part text `mix_partner[i]`). Under a multi-replica strategy the loss sees the
    global batch (see `tfmm.losses`). With raw inputs: `embed_images`, `embed_texts` (unit vectors)
    and `zero_shot` (one classifier per class from its names in every prompt template, averaged).
    """

    backbone_cls = CLIPBackbone
    preprocessor_cls = ContrastiveRetrieverPreprocessor

    def __init__(self, backbone, preprocessor=None, loss="infonce", logit_scale_init=1 / 0.07, logit_scale_max=100.0,
                 triplet_margin=0.2, templates=DEFAULT_TEMPLATES, logit_bias_init=None, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        if loss == "sigmoid" and logit_bias_init is None:
            logit_bias_init = -10.0  # SigLIP's start: most in-batch pairs are negatives
        self.head = ContrastiveHead(logit_scale_init, logit_scale_max, logit_bias_init, name="contrastive_head")
        self.loss_fn = CONTRASTIVE_LOSSES.get(loss, "model.loss")
        inputs = backbone.input
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.head.build()
        self.loss_name, self.logit_scale_init, self.logit_scale_max = loss, logit_scale_init, logit_scale_max
        self.triplet_margin, self.templates = triplet_margin, check_templates(templates)
        self.logit_bias_init = logit_bias_init

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mixing = None
        if isinstance(y, dict) and MIX_WEIGHT in y:  # MixUp/CutMix (tfmm.data.mixing): image i holds λᵢ of text i
            weight = tf.cast(y[MIX_WEIGHT], tf.float32)[:, None]
            own = tf.eye(tf.shape(weight)[0])
            mixing = weight * own + (1.0 - weight) * tf.one_hot(y[MIX_PARTNER], tf.shape(weight)[0])
        loss = self.loss_fn(y_pred["image_embedding"], y_pred["text_embedding"], self.head.scale(), margin=self.triplet_margin,
                            bias=self.head.bias(), mixing=mixing)
        return loss + sum(self.losses) if self.losses else loss

    def similarity(self, image_embedding, text_embedding):
        return self.head(image_embedding, text_embedding)

    # ------------------------------------------------------------------------------------ raw inputs

    def embed_images(self, images, batch_size=256):
        """uint8 images (n, H, W, 3) or encoded bytes → unit embeddings (n, d)."""
        embedder = self.backbone.image_embedder()

        def run(images):
            return embedder(self.preprocessor.convert_images(images), training=False)

        return self.run_in_batches(self.graph_function("embed_images", run), {"images": check_images(images)}, batch_size)["embedding"]

    def embed_texts(self, texts, batch_size=512):
        """Strings → unit embeddings (n, d)."""
        texts = self.preprocessor.check_texts(texts)
        embedder = self.backbone.text_embedder()

        def run(texts):
            return embedder(self.preprocessor.tokenize(texts), training=False)

        return self.run_in_batches(self.graph_function("embed_texts", run), {"texts": texts}, batch_size)["embedding"]

    def class_embeddings(self, class_names, templates=None):
        """One unit vector per class: the mean over prompt templates of the class name's embeddings."""
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise TfmmError("the class list is empty")
        templates = check_templates(templates or self.templates)
        prompts = [t.replace("{}", name) for name in class_names for t in templates]
        embeddings = self.embed_texts(prompts).reshape(len(class_names), len(templates), -1).mean(axis=1)
        return embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)

    def zero_shot(self, images, class_names, templates=None):
        """Raw images → `labels` (the most likely class name per image) and `probabilities` (n, classes)."""
        logits = float(self.head.scale()) * self.embed_images(images) @ self.class_embeddings(class_names, templates).T
        probabilities = tf.nn.softmax(logits).numpy()
        return {"labels": [class_names[i] for i in probabilities.argmax(-1)], "probabilities": probabilities}

    def get_config(self):
        return {**super().get_config(), "loss": self.loss_name, "logit_scale_init": self.logit_scale_init,
                "logit_scale_max": self.logit_scale_max, "triplet_margin": self.triplet_margin,
                "templates": list(self.templates), "logit_bias_init": self.logit_bias_init}
