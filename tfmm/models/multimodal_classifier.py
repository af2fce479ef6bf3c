import keras
from keras import ops

from tfmm.models.task import Task

MODALITIES = ("both", "image", "text")
LOSS_WEIGHTINGS = ("static", "uncertainty")


@keras.saving.register_keras_serializable(package="tfmm")
class MultimodalClassifier(Task):
    """Image encoder + text encoder + a fusion layer + one classification head per task.

    Inputs `images` (batch, S, S, 3) float 0..1, `token_ids` / `padding_mask` (batch, L).
    Outputs per task `<task>` (logits, float32) and `<task>_probabilities`, plus the fusion's
    weights where it has them. `modalities="image"` or `"text"` builds a single-modality
    baseline on the same encoders (no fusion).

    `tasks` maps each task to its class names. The loss is the sum over tasks of a masked
    cross-entropy (weight 0 for unknown labels), weighted statically (`loss_weights`) or by
    learned task uncertainty (Kendall et al., 2018: Σ exp(−s_t)·L_t + s_t with s_t = log σ²_t).
    A `late` fusion here mixes per-modality vectors (its `num_outputs` is the fusion width) and each
    task's head on top is linear, so each task's logits are still the learned-weight mix of two
    per-modality predictions.
    """

    def __init__(self, image_encoder, text_encoder, fusion, tasks, modalities="both", hidden_dim=256, dropout=0.1,
                 loss_weighting="static", loss_weights=None, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(text_encoder, dict):
            text_encoder = keras.layers.deserialize(text_encoder)
        if isinstance(fusion, dict):
            fusion = keras.layers.deserialize(fusion)
        if (fusion is None) != (modalities != "both"):
            raise ValueError("give a fusion layer exactly when modalities is 'both'")
        if modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {modalities!r}")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {loss_weighting!r}")
        self.image_encoder, self.text_encoder, self.fusion = image_encoder, text_encoder, fusion
        self.tasks = {task: list(names) for task, names in tasks.items()}
        images = keras.Input(image_encoder.input.shape[1:], name="images")
        length = text_encoder.input["token_ids"].shape[1]
        token_ids = keras.Input((length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((length,), dtype="int32", name="padding_mask")
        image = image_encoder(images)
        text = text_encoder({"token_ids": token_ids, "padding_mask": padding_mask})
        outputs = {}
        if modalities == "both":
            fused = fusion({"image_sequence": image["sequence_output"], "image_pooled": image["pooled_output"],
                            "text_sequence": text["sequence_output"], "text_pooled": text["pooled_output"],
                            "text_mask": padding_mask})
            shared = fused["fused"]
            for name in ("attention", "gate", "modality_weights"):
                if name in fused:
                    outputs[name] = keras.layers.Activation("linear", dtype="float32", name=name)(fused[name])
        else:
            pooled = image["pooled_output"] if modalities == "image" else text["pooled_output"]
            shared = keras.layers.Dense(hidden_dim, activation="gelu", name=f"{modalities}_only")(pooled)
        shared = keras.layers.Dropout(dropout, name="shared_dropout")(shared)
        late = fusion is not None and fusion.returns_logits
        for task, names in self.tasks.items():
            # After late fusion the heads stay linear, so each task's logits remain a learned-weight mix of
            # the two per-modality predictions; other fusions get an MLP head.
            hidden = shared if late else keras.layers.Dense(hidden_dim, activation="gelu", name=f"{task}_hidden")(shared)
            outputs[task] = keras.layers.Dense(len(names), dtype="float32", name=task)(hidden)
            outputs[f"{task}_probabilities"] = keras.layers.Softmax(dtype="float32", name=f"{task}_probabilities")(outputs[task])
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=outputs, **kwargs)
        self.modalities, self.hidden_dim, self.dropout = modalities, hidden_dim, dropout
        self.loss_weighting = loss_weighting
        self.loss_weights = {task: float((loss_weights or {}).get(task, 1.0)) for task in self.tasks}
        self.task_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        self.task_accuracy = {task: keras.metrics.SparseCategoricalAccuracy(name=f"{task}_accuracy") for task in self.tasks}
        # log σ² per task, learnt when loss_weighting is "uncertainty" (unused, but kept for a fixed layout, otherwise).
        self.log_variances = self.add_weight(name="log_variances", shape=(len(self.tasks),), initializer="zeros",
                                             trainable=loss_weighting == "uncertainty")

    @property
    def image_size(self):
        return self.image_encoder.input.shape[1]

    @property
    def sequence_length(self):
        return self.text_encoder.input["token_ids"].shape[1]

    def task_weights(self):
        """The weight each task's loss gets now: static, or exp(−s_t) under uncertainty weighting."""
        if self.loss_weighting == "static":
            return dict(self.loss_weights)
        values = ops.convert_to_numpy(ops.exp(-self.log_variances))
        return {task: float(v) for task, v in zip(self.tasks, values)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = 0.0
        for index, task in enumerate(self.tasks):
            weight = sample_weight[task] if sample_weight is not None else None
            loss = self.task_loss(y[task], y_pred[task], weight)
            if self.loss_weighting == "uncertainty":
                log_variance = ops.cast(self.log_variances[index], loss.dtype)
                total = total + ops.exp(-log_variance) * loss + log_variance
            else:
                total = total + self.loss_weights[task] * loss
        return total + sum(self.losses) if self.losses else total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for task, metric in self.task_accuracy.items():
            metric.update_state(y[task], y_pred[task], sample_weight[task] if sample_weight is not None else None)
        return self.get_metrics_result()

    def get_config(self):
        return {
            "name": self.name,
            "image_encoder": keras.layers.serialize(self.image_encoder),
            "text_encoder": keras.layers.serialize(self.text_encoder),
            "fusion": keras.layers.serialize(self.fusion) if self.fusion is not None else None,
            "tasks": self.tasks,
            "modalities": self.modalities,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout,
            "loss_weighting": self.loss_weighting,
            "loss_weights": self.loss_weights,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
