import keras
from keras import ops

from tfmm.models.task import Task

MAX_OBJECTS = 3


@keras.saving.register_keras_serializable(package="tfmm")
class SceneAttributeClassifier(Task):
    """Reads a `shapes` scene from its pixels: how many objects, and the colour and shape of each,
    left to right. The text-to-image app's judge of whether a generated image shows its prompt.

    Inputs `images` (batch, S, S, 3) 0..1; outputs per head logits: `count` (MAX_OBJECTS classes:
    1…3 objects) and `colour{i}` / `shape{i}` for slots i = 0…2 (class 0 = no object there).
    `model.fit(images, {head: class ids})` with a cross-entropy per head.
    """

    def __init__(self, image_encoder, num_colours, num_shapes, hidden_dim=256, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        self.image_encoder = image_encoder
        images = keras.Input(tuple(image_encoder.input.shape[1:]), name="images")
        encoded = image_encoder(images)
        flat = keras.layers.Flatten(name="regions")(encoded["sequence_output"])  # keeps where things are
        hidden = keras.layers.Dense(hidden_dim, activation="gelu", name="hidden")(flat)
        outputs = {"count": keras.layers.Dense(MAX_OBJECTS, dtype="float32", name="count")(hidden)}
        for slot in range(MAX_OBJECTS):
            outputs[f"colour{slot}"] = keras.layers.Dense(num_colours + 1, dtype="float32", name=f"colour{slot}")(hidden)
            outputs[f"shape{slot}"] = keras.layers.Dense(num_shapes + 1, dtype="float32", name=f"shape{slot}")(hidden)
        super().__init__(inputs=images, outputs=outputs, **kwargs)
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

    def get_config(self):
        return {"name": self.name, "image_encoder": keras.layers.serialize(self.image_encoder),
                "num_colours": self.num_colours, "num_shapes": self.num_shapes, "hidden_dim": self.hidden_dim}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
