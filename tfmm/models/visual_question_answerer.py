import keras
import numpy as np

from tfmm.models.fusion_backbone import FUSION_WEIGHTS, FusionBackbone
from tfmm.models.task import Task, check_images
from tfmm.models.visual_question_answerer_preprocessor import VisualQuestionAnswererPreprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class VisualQuestionAnswerer(Task):
    """A `FusionBackbone` (question groups; image or clip) + an answer classifier over the preprocessor's
    `answer_vocabulary`.

    Outputs per question: `logits` and `probabilities` (float32) and the backbone's fusion weights.
    `fit` on raw `({"images", "questions"}, answers, real)` batches (the preprocessor maps them) or
    on preprocessed tensors with the preprocessor detached. `answer(images, questions)` takes raw
    inputs, one question per image.
    """

    backbone_cls = FusionBackbone
    preprocessor_cls = VisualQuestionAnswererPreprocessor

    def __init__(self, backbone, preprocessor=None, num_answers=None, classifier_hidden_dim=256, dropout=0.1, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        if num_answers is None:
            num_answers = len(preprocessor.answer_vocabulary)
        inputs = backbone.input
        features = backbone(inputs)
        if backbone.returns_logits:  # late fusion predicts the answers itself
            logits = keras.layers.Activation("linear", dtype="float32", name="logits")(features["fused"])
        else:
            hidden = keras.layers.Dropout(dropout, name="classifier_dropout")(features["fused"])
            hidden = keras.layers.Dense(classifier_hidden_dim, activation="gelu", name="classifier_hidden")(hidden)
            logits = keras.layers.Dense(num_answers, dtype="float32", name="logits")(hidden)
        outputs = {"logits": logits, "probabilities": keras.layers.Softmax(dtype="float32", name="probabilities")(logits)}
        outputs.update({name: features[name] for name in (*FUSION_WEIGHTS, "frame_attention") if name in features})
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.num_answers, self.classifier_hidden_dim, self.dropout = num_answers, classifier_hidden_dim, dropout
        self.answer_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        self.answer_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def answer_vocabulary(self):
        return self.preprocessor.answer_vocabulary

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.answer_loss(y, y_pred["logits"], sample_weight)
        return loss + sum(self.losses) if self.losses else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.answer_accuracy.update_state(y, y_pred["logits"], sample_weight)
        return self.get_metrics_result()

    def answer_details(self, images, questions, batch_size=64):
        """One question per image (raw) → per question `probabilities` (n, answers) and the fusion's
        weights (`attention`, ... with the question axis dropped), as NumPy arrays."""
        questions = self.preprocessor.check_texts(questions, "question", require_known_words=True)
        images = check_images(images, len(questions))

        def run(images, questions):
            outputs = self(self.preprocessor({"images": images, "questions": questions}), training=False)
            return {name: value[:, 0] for name, value in outputs.items() if name != "logits"}

        return self.run_in_batches(self.graph_function("answer", run), {"images": images, "questions": questions}, batch_size)

    def answer(self, images, questions):
        """Raw images (uint8 (n, H, W, 3) or encoded bytes; clips (n, frames, ...)) and one question each
        → the answers, as strings."""
        probabilities = self.answer_details(images, questions)["probabilities"]
        return [self.answer_vocabulary[i] for i in np.argmax(probabilities, axis=-1)]

    def get_config(self):
        return {**super().get_config(), "num_answers": self.num_answers,
                "classifier_hidden_dim": self.classifier_hidden_dim, "dropout": self.dropout}
