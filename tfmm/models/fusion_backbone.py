import keras
import keras_hub

from tfmm.layers import FoldGroups, FrameAttentionPooling, RepeatForGroups, UnfoldGroups

MODALITIES = ("both", "image", "text")
FUSION_WEIGHTS = ("attention", "image_attention", "gate", "modality_weights")


@keras.saving.register_keras_serializable(package="tfmm")
class FusionBackbone(keras_hub.models.Backbone):
    """Image encoder + text encoder + a fusion layer: the joint features an image–text head reads
    (the VQA answerer's and the multimodal classifier's backbone).

    Inputs: `images` (batch, S, S, 3) float 0..1, or clips (batch, frames, S, S, 3) when `frames` > 0;
    `token_ids` / `padding_mask` (batch, L), or (batch, questions, L) with `question_groups`: every
    image comes with the questions asked about it and is encoded once however many there are. For
    clips the encoder runs per frame and `FrameAttentionPooling` pools the frames for each question.

    Outputs: `fused` (batch[, questions], width) and the fusion's weights where it has them
    (`attention`, `image_attention`, `gate`, `modality_weights`, and `frame_attention` for clips).
    `modalities="image"` or `"text"` builds a single-modality baseline on the same encoders: no
    fusion, a GELU layer of `hidden_dim` on that modality's pooled features.
    """

    def __init__(self, image_encoder, text_encoder, fusion=None, modalities="both", question_groups=False, frames=0,
                 frame_heads=2, hidden_dim=256, dtype=None, **kwargs):
        image_encoder, text_encoder, fusion = (keras.layers.deserialize(x) if isinstance(x, dict) else x
                                               for x in (image_encoder, text_encoder, fusion))
        if modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {modalities!r}")
        if (fusion is None) != (modalities != "both"):
            raise ValueError("give a fusion layer exactly when modalities is 'both'")
        self.image_encoder, self.text_encoder, self.fusion = image_encoder, text_encoder, fusion
        # A single-modality baseline keeps the other tower (one layout for every preset) but nothing reads it:
        # frozen, it is not handed to the optimizer without gradients.
        if modalities == "image":
            text_encoder.trainable = False
        elif modalities == "text":
            image_encoder.trainable = False
        image_shape = tuple(image_encoder.input.shape[1:])
        length = text_encoder.input["token_ids"].shape[1]
        text_shape = (None, length) if question_groups else (length,)
        images = keras.Input(((frames,) if frames else ()) + image_shape, name="images")
        token_ids = keras.Input(text_shape, dtype="int32", name="token_ids")
        padding_mask = keras.Input(text_shape, dtype="int32", name="padding_mask")

        # Grouped questions: the text encoder reads (batch · questions, L); image features are repeated
        # per question; outputs unfold back to (batch, questions, ...).
        fold = FoldGroups(name="fold_questions") if question_groups else None
        repeat = RepeatForGroups(name="per_question") if question_groups else None
        text_mask = FoldGroups(name="fold_mask")(padding_mask) if question_groups else padding_mask
        text = text_encoder({"token_ids": fold(token_ids) if fold else token_ids, "padding_mask": text_mask})
        extra = {}
        if frames:
            encoded = image_encoder(FoldGroups(name="fold_frames")(images))
            unfold_frames = UnfoldGroups(name="unfold_frames")
            per_question = repeat or (lambda x, _: x)
            frame_sequence = per_question(unfold_frames(encoded["sequence_output"], images), token_ids)
            frame_pooled = per_question(unfold_frames(encoded["pooled_output"], images), token_ids)
            pooling = FrameAttentionPooling(
                frame_heads, name="frame_pooling",
                pooled_used=modalities == "image" or (modalities == "both" and fusion.uses_image_pooled),
                sequence_used=modalities == "both" and fusion.uses_image_sequence)
            pooling.trainable = modalities != "text"  # a text-only baseline reads no frame
            pooled = pooling(
                {"frame_sequence": frame_sequence, "frame_pooled": frame_pooled, "question": text["pooled_output"]})
            image_sequence, image_pooled = pooled["image_sequence"], pooled["image_pooled"]
            extra["frame_attention"] = pooled["frame_attention"]
        else:
            encoded = image_encoder(images)
            image_sequence, image_pooled = encoded["sequence_output"], encoded["pooled_output"]
            if repeat:
                image_sequence, image_pooled = repeat(image_sequence, token_ids), repeat(image_pooled, token_ids)

        if modalities == "both":
            fused = fusion({"image_sequence": image_sequence, "image_pooled": image_pooled,
                            "text_sequence": text["sequence_output"], "text_pooled": text["pooled_output"],
                            "text_mask": text_mask})
            extra.update({name: fused[name] for name in FUSION_WEIGHTS if name in fused})
            joint = fused["fused"]
        else:
            alone = image_pooled if modalities == "image" else text["pooled_output"]
            joint = keras.layers.Dense(hidden_dim, activation="gelu", dtype=dtype, name=f"{modalities}_only")(alone)

        def unfold(value, name):
            if fold is None:
                return keras.layers.Identity(dtype="float32" if name != "fused" else dtype, name=name)(value)
            return UnfoldGroups(dtype="float32" if name != "fused" else dtype, name=name)(value, token_ids)

        outputs = {"fused": unfold(joint, "fused"), **{name: unfold(value, name) for name, value in extra.items()}}
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=outputs, dtype=dtype, **kwargs)
        self.modalities, self.question_groups, self.frames = modalities, question_groups, frames
        self.frame_heads, self.hidden_dim = frame_heads, hidden_dim

    @property
    def returns_logits(self):
        """True for `late` fusion, whose `fused` output already is the answer logits."""
        return self.fusion is not None and self.fusion.returns_logits

    @property
    def image_size(self):
        return self.image_encoder.input.shape[1]

    @property
    def sequence_length(self):
        return self.text_encoder.input["token_ids"].shape[1]

    def get_config(self):
        config = super().get_config()
        config.update(
            image_encoder=keras.layers.serialize(self.image_encoder), text_encoder=keras.layers.serialize(self.text_encoder),
            fusion=keras.layers.serialize(self.fusion) if self.fusion is not None else None, modalities=self.modalities,
            question_groups=self.question_groups, frames=self.frames, frame_heads=self.frame_heads,
            hidden_dim=self.hidden_dim,
        )
        return config
