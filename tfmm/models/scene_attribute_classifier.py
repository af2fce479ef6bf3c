import keras
import numpy as np
from keras import ops

from tfmm.encoders import CNNImageEncoder
from tfmm.models.image_preprocessor import ImagePreprocessor
from tfmm.models.task import Task, check_images

MAX_OBJECTS = 3


@keras.saving.register_keras_serializable(package="tfmm")
class SceneAttributeClassifier(Task):
    """Reads a `shapes` scene from its pixels: how many objects, and the colour and shape of each,
    left to right. The text-to-image app's judge of whether a generated image shows its prompt.

    Backbone: an image encoder (its region grid, flattened, keeps where things are). Outputs per head
    logits: `count` (MAX_OBJECTS classes: 1…3 objects) and `colour{i}` / `shape{i}` for slots
    i = 0…2 (class 0 = no object there). `fit` on raw `({"images"}, {head: class ids})`.
    `read(images)` → the class ids per head for raw images.
    """

    backbone_cls = CNNImageEncoder
    preprocessor_cls = ImagePreprocessor

    def __init__(self, backbone, preprocessor=None, num_colours=6, num_shapes=5, hidden_dim=256, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        inputs = backbone.input
        flat = keras.layers.Flatten(name="regions")(backbone(inputs)["sequence_output"])
        hidden = keras.layers.Dense(hidden_dim, activation="gelu", name="hidden")(flat)
        outputs = {"count": keras.layers.Dense(MAX_OBJECTS, dtype="float32", name="count")(hidden)}
        for slot in range(MAX_OBJECTS):
            outputs[f"colour{slot}"] = keras.layers.Dense(num_colours + 1, dtype="float32", name=f"colour{slot}")(hidden)
            outputs[f"shape{slot}"] = keras.layers.Dense(num_shapes + 1, dtype="float32", name=f"shape{slot}")(hidden)
        super().__init__(inputs={"images": inputs}, outputs=outputs, **kwargs)
        self.num_colours, self.num_shapes, self.hidden_dim = num_colours, num_shapes, hidden_dim
        self.head_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.scene_accuracy = keras.metrics.Mean(name="scene_accuracy")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return sum(self.head_loss(y[name], y_pred[name]) for name in y_pred)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        right = [ops.cast(ops.argmax(y_pred[name], -1), "int32") == ops.cast(y[name], "int32") for name in y_pred]
        all_right = right[0]
        for more in right[1:]:
            all_right = ops.logical_and(all_right, more)
        self.scene_accuracy.update_state(ops.cast(all_right, "float32"))
        return self.get_metrics_result()

    def read(self, images, batch_size=256):
        """Raw images → {head: predicted class id per image}."""
        def run(images):
            outputs = self(self.preprocessor({"images": images}), training=False)
            return {name: ops.argmax(logits, -1) for name, logits in outputs.items()}

        out = self.run_in_batches(self.graph_function("read", run), {"images": check_images(images)}, batch_size)
        return {name: np.asarray(ids, np.int64) for name, ids in out.items()}

    def get_config(self):
        return {**super().get_config(), "num_colours": self.num_colours, "num_shapes": self.num_shapes,
                "hidden_dim": self.hidden_dim}
