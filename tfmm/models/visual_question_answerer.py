import keras

from tfmm.layers import FoldGroups, FrameAttentionPooling, RepeatForGroups, UnfoldGroups
from tfmm.models.task import Task


@keras.saving.register_keras_serializable(package="tfmm")
class VisualQuestionAnswerer(Task):
    """Image (or clip) encoder + question encoder + a fusion layer + an answer classifier.

    Inputs: `images` (batch, S, S, 3) float 0..1, or clips (batch, frames, S, S, 3); questions
    as `token_ids` and `padding_mask` of shape (batch, questions, tokens): every image comes
    with the questions asked about it, so the image encoder runs once per image however many
    questions it has (`questions` may be 1). For clips the encoder runs per frame and
    `FrameAttentionPooling` pools the frames, conditioned on each question.

    Outputs (per question): `logits` and `probabilities` over `answer_vocabulary` (float32),
    and the fusion's weights where it has them (`attention`, `gate`, `modality_weights`),
    plus `frame_attention` for clips. Trained with `model.fit` on
    `(inputs, answer ids (batch, questions), weights (batch, questions))`; weight 0 marks
    padding questions and answers outside the vocabulary.
    """

    def __init__(self, image_encoder, text_encoder, fusion, answer_vocabulary, frames=0, frame_heads=2,
                 classifier_hidden_dim=256, dropout=0.1, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(text_encoder, dict):
            text_encoder = keras.layers.deserialize(text_encoder)
        if isinstance(fusion, dict):
            fusion = keras.layers.deserialize(fusion)
        self.image_encoder, self.text_encoder, self.fusion = image_encoder, text_encoder, fusion
        self.answer_vocabulary = list(answer_vocabulary)
        image_shape = tuple(image_encoder.input.shape[1:])
        sequence_length = text_encoder.input["token_ids"].shape[1]
        images = keras.Input(((frames,) if frames else ()) + image_shape, name="images")
        token_ids = keras.Input((None, sequence_length), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None, sequence_length), dtype="int32", name="padding_mask")

        fold, repeat = FoldGroups(name="fold_questions"), RepeatForGroups(name="per_question")
        text_mask = FoldGroups(name="fold_mask")(padding_mask)
        text = text_encoder({"token_ids": fold(token_ids), "padding_mask": text_mask})
        extra = {}
        if frames:
            encoded = image_encoder(FoldGroups(name="fold_frames")(images))
            unfold_frames = UnfoldGroups(name="unfold_frames")
            frame_sequence = repeat(unfold_frames(encoded["sequence_output"], images), token_ids)
            frame_pooled = repeat(unfold_frames(encoded["pooled_output"], images), token_ids)
            pooled = FrameAttentionPooling(frame_heads, name="frame_pooling")(
                {"frame_sequence": frame_sequence, "frame_pooled": frame_pooled, "question": text["pooled_output"]}
            )
            image_sequence, image_pooled = pooled["image_sequence"], pooled["image_pooled"]
            extra["frame_attention"] = pooled["frame_attention"]
        else:
            encoded = image_encoder(images)
            image_sequence, image_pooled = repeat(encoded["sequence_output"], token_ids), repeat(encoded["pooled_output"], token_ids)
        fused = fusion({
            "image_sequence": image_sequence, "image_pooled": image_pooled, "text_sequence": text["sequence_output"],
            "text_pooled": text["pooled_output"], "text_mask": text_mask,
        })
        if fusion.returns_logits:
            logits = keras.layers.Activation("linear", dtype="float32", name="logits")(fused["fused"])
        else:
            hidden = keras.layers.Dropout(dropout, name="classifier_dropout")(fused["fused"])
            hidden = keras.layers.Dense(classifier_hidden_dim, activation="gelu", name="classifier_hidden")(hidden)
            logits = keras.layers.Dense(len(self.answer_vocabulary), dtype="float32", name="logits")(hidden)
        outputs = {"logits": UnfoldGroups(dtype="float32", name="unfold_questions")(logits, token_ids)}
        outputs["probabilities"] = keras.layers.Softmax(dtype="float32", name="probabilities")(outputs["logits"])
        for name in ("attention", "gate", "modality_weights"):
            if name in fused:
                outputs[name] = UnfoldGroups(dtype="float32", name=f"unfold_{name}")(fused[name], token_ids)
        for name, value in extra.items():
            outputs[name] = UnfoldGroups(dtype="float32", name=f"unfold_{name}")(value, token_ids)
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=outputs, **kwargs)
        self.frames, self.frame_heads = frames, frame_heads
        self.classifier_hidden_dim, self.dropout = classifier_hidden_dim, dropout
        self.answer_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        self.answer_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def image_size(self):
        return self.image_encoder.input.shape[1]

    @property
    def sequence_length(self):
        return self.text_encoder.input["token_ids"].shape[1]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.answer_loss(y, y_pred["logits"], sample_weight)
        return loss + sum(self.losses) if self.losses else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.answer_accuracy.update_state(y, y_pred["logits"], sample_weight)
        return self.get_metrics_result()

    def get_config(self):
        return {
            "name": self.name,
            "image_encoder": keras.layers.serialize(self.image_encoder),
            "text_encoder": keras.layers.serialize(self.text_encoder),
            "fusion": keras.layers.serialize(self.fusion),
            "answer_vocabulary": self.answer_vocabulary,
            "frames": self.frames,
            "frame_heads": self.frame_heads,
            "classifier_hidden_dim": self.classifier_hidden_dim,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
