import keras
import numpy as np
from keras import ops

from tfmm.data.mixing import MIX_PARTNER, MIX_WEIGHT
from tfmm.models.fusion_backbone import FUSION_WEIGHTS, FusionBackbone
from tfmm.models.multimodal_classifier_preprocessor import MultimodalClassifierPreprocessor
from tfmm.models.task import Task, check_images

LOSS_WEIGHTINGS = ("static", "uncertainty")


@keras.saving.register_keras_serializable(package="tfmm")
class MultimodalClassifier(Task):
    """A `FusionBackbone` (or a single-modality baseline of it) + one classification head per task; the
    tasks and their class names come from the preprocessor.

    Outputs per task `<task>` (logits, float32) and `<task>_probabilities`, plus the fusion's weights.
    The loss is the sum over tasks of a masked cross-entropy (weight 0 for unknown labels), weighted
    statically (`loss_weights`) or by learned task uncertainty (Kendall et al., 2018:
    Σ exp(−s_t)·L_t + s_t with s_t = log σ²_t). After a `late` fusion the heads are linear, so each
    task's logits remain the learned-weight mix of two per-modality predictions.
    """

    backbone_cls = FusionBackbone
    preprocessor_cls = MultimodalClassifierPreprocessor

    def __init__(self, backbone, preprocessor=None, tasks=None, hidden_dim=256, dropout=0.1, loss_weighting="static",
                 loss_weights=None, **kwargs):
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {loss_weighting!r}")
        self.backbone, self.preprocessor = backbone, preprocessor
        tasks = tasks if tasks is not None else preprocessor.tasks
        self.class_counts = {task: (len(names) if isinstance(names, (list, tuple)) else int(names))
                             for task, names in tasks.items()}
        inputs = backbone.input
        features = backbone(inputs)
        shared = keras.layers.Dropout(dropout, name="shared_dropout")(features["fused"])
        outputs = {name: features[name] for name in FUSION_WEIGHTS if name in features}
        for task, count in self.class_counts.items():
            hidden = shared if backbone.returns_logits else keras.layers.Dense(
                hidden_dim, activation="gelu", name=f"{task}_hidden")(shared)
            outputs[task] = keras.layers.Dense(count, dtype="float32", name=task)(hidden)
            outputs[f"{task}_probabilities"] = keras.layers.Softmax(dtype="float32", name=f"{task}_probabilities")(outputs[task])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.hidden_dim, self.dropout, self.loss_weighting = hidden_dim, dropout, loss_weighting
        self.loss_weights = {task: float((loss_weights or {}).get(task, 1.0)) for task in self.class_counts}
        self.task_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        self.task_accuracy = {task: keras.metrics.SparseCategoricalAccuracy(name=f"{task}_accuracy")
                              for task in self.class_counts}
        # log σ² per task, learnt under "uncertainty" weighting (kept, untrained, otherwise: a fixed layout).
        self.log_variances = self.add_weight(name="log_variances", shape=(len(self.class_counts),), initializer="zeros",
                                             trainable=loss_weighting == "uncertainty")

    @property
    def tasks(self):
        return self.preprocessor.tasks

    def task_weights(self):
        """The weight each task's loss gets now: static, or exp(−s_t) under uncertainty weighting."""
        if self.loss_weighting == "static":
            return dict(self.loss_weights)
        values = ops.convert_to_numpy(ops.exp(-self.log_variances))
        return {task: float(v) for task, v in zip(self.class_counts, values)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = 0.0
        for index, task in enumerate(self.class_counts):
            weight = sample_weight[task] if sample_weight is not None else None
            if MIX_WEIGHT in y:  # MixUp/CutMix: λ·CE(own label) + (1−λ)·CE(partner's), over the known labels
                loss = self._mixed_loss(task, y, y_pred, sample_weight)
            else:
                loss = self.task_loss(y[task], y_pred[task], weight)
            if self.loss_weighting == "uncertainty":
                log_variance = ops.cast(self.log_variances[index], loss.dtype)
                total = total + ops.exp(-log_variance) * loss + log_variance
            else:
                total = total + self.loss_weights[task] * loss
        return total + sum(self.losses) if self.losses else total

    def _mixed_loss(self, task, y, y_pred, sample_weight):
        cross_entropy = keras.losses.sparse_categorical_crossentropy
        own = ops.cast(y[MIX_WEIGHT], "float32") * sample_weight[task]
        partner = (1.0 - ops.cast(y[MIX_WEIGHT], "float32")) * sample_weight[MIX_PARTNER][task]
        total = (ops.sum(own * cross_entropy(y[task], y_pred[task], from_logits=True))
                 + ops.sum(partner * cross_entropy(y[MIX_PARTNER][task], y_pred[task], from_logits=True)))
        return total / ops.maximum(ops.sum(own + partner), 1e-6)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for task, metric in self.task_accuracy.items():
            metric.update_state(y[task], y_pred[task], sample_weight[task] if sample_weight is not None else None)
        return self.get_metrics_result()

    def classify_details(self, images, texts, batch_size=64):
        """Raw images and one text each → `<task>_probabilities` (n, classes) per task, as NumPy."""
        texts = self.preprocessor.check_texts(texts)
        images = check_images(images, len(texts))
        keys = [f"{task}_probabilities" for task in self.class_counts]

        def run(images, texts):
            outputs = self(self.preprocessor({"images": images, "text": texts}), training=False)
            return {key: outputs[key] for key in keys}

        return self.run_in_batches(self.graph_function("classify", run), {"images": images, "texts": texts}, batch_size)

    def classify(self, images, texts):
        """Raw images and one text each → {task: [class name per example]}."""
        probabilities = self.classify_details(images, texts)
        return {task: [names[i] for i in np.argmax(probabilities[f"{task}_probabilities"], -1)]
                for task, names in self.tasks.items()}

    def get_config(self):
        return {**super().get_config(), "tasks": dict(self.class_counts), "hidden_dim": self.hidden_dim,
                "dropout": self.dropout, "loss_weighting": self.loss_weighting, "loss_weights": self.loss_weights}
