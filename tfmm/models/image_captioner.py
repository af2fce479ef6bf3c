import keras
from keras import ops

from tfmm import decoding
from tfmm.models.task import Task


@keras.saving.register_keras_serializable(package="tfmm")
class ImageCaptioner(Task):
    """An image encoder's region grid + a caption decoder (`GRUAttentionDecoder` or `TransformerCaptionDecoder`).

    Inputs: `images` (batch, S, S, 3) float 0..1 and `token_ids` (batch, L): the caption from its
    start token, without its last token (teacher forcing). Outputs: `logits` (batch, L, vocabulary),
    float32, for the next token at each position, and `attention` (batch, L, regions).
    Trained with `model.fit` on `(inputs, next token ids (batch, L), padding weights (batch, L))`:
    a masked cross-entropy (padding ignored), label smoothing as an option, and for attention
    decoders the doubly stochastic regulariser λ·Σ_regions (1 − Σ_words α)² (Show, Attend and Tell),
    which asks every region to be looked at about once over a caption.

    `generate(images, ...)` decodes in TensorFlow ops (greedy, sampling or beam search), the same
    code that runs inside the exported SavedModel.
    """

    def __init__(self, image_encoder, decoder, sequence_length, start_id, end_id, pad_id=0, label_smoothing=0.0,
                 attention_regularizer=0.0, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(decoder, dict):
            decoder = keras.layers.deserialize(decoder)
        self.image_encoder, self.decoder = image_encoder, decoder
        images = keras.Input(tuple(image_encoder.input.shape[1:]), name="images")
        token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        regions = image_encoder(images)["sequence_output"]
        decoded = decoder({"token_ids": token_ids, "regions": regions})
        outputs = {"logits": keras.layers.Identity(dtype="float32", name="logits")(decoded["logits"]),
                   "attention": keras.layers.Identity(dtype="float32", name="attention")(decoded["attention"])}
        super().__init__(inputs={"images": images, "token_ids": token_ids}, outputs=outputs, **kwargs)
        self.sequence_length, self.start_id, self.end_id, self.pad_id = sequence_length, start_id, end_id, pad_id
        self.label_smoothing, self.attention_regularizer = label_smoothing, attention_regularizer
        self.token_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing,
                                                               reduction=None)
        self.token_accuracy = keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")

    @property
    def image_size(self):
        return self.image_encoder.input.shape[1]

    @property
    def num_regions(self):
        return self.image_encoder.output["sequence_output"].shape[1]

    @property
    def max_positions(self):
        """The longest caption (in tokens after the start token) the decoder can produce."""
        return getattr(self.decoder, "sequence_length", None) or 4 * self.sequence_length

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = y_pred["logits"]
        weights = ops.cast(sample_weight, "float32")
        per_token = self.token_loss(ops.one_hot(y, ops.shape(logits)[-1]), logits)
        loss = ops.sum(per_token * weights) / ops.maximum(ops.sum(weights), 1.0)
        if self.attention_regularizer:
            looked = ops.sum(y_pred["attention"] * weights[..., None], axis=1)  # (batch, regions)
            loss += self.attention_regularizer * ops.mean(ops.sum(ops.square(1.0 - looked), axis=-1))
        return loss + sum(self.losses) if self.losses else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.token_accuracy.update_state(y, y_pred["logits"], sample_weight)
        return self.get_metrics_result()

    # ------------------------------------------------------------------------------------- decoding

    def initial_state(self, images, max_length):
        regions = self.image_encoder(images, training=False)["sequence_output"]
        return self.decoder.initial_state(regions, max_length)

    def step(self, token_ids, state, index):
        logits, state = self.decoder.step(token_ids, state, index)
        never = ops.one_hot(self.pad_id, ops.shape(logits)[-1]) + ops.one_hot(self.start_id, ops.shape(logits)[-1])
        return ops.where(never[None] > 0, decoding.NEG_INF, logits), state  # a caption never emits [PAD] or [CLS]

    def generate(self, images, max_length, beam_width=1, length_penalty=0.0, temperature=0.0, top_k=0, top_p=1.0,
                 seed=(0, 0), sample=False):
        """Captions as token ids. Beam search (`sample=False`; width 1 is greedy) returns `token_ids`
        (batch, beams, max_length) and `scores` (batch, beams), best first; `sample=True` draws with
        temperature / top-k / top-p → `token_ids` (batch, 1, max_length) and their log-probability as `scores`.
        """
        batch = ops.shape(images)[0]
        state = self.initial_state(images, max_length)
        if sample:
            out = decoding.sample(self.step, state, batch, self.start_id, self.end_id, max_length, temperature, top_k,
                                  top_p, seed, self.pad_id)
            return {"token_ids": out["token_ids"][:, None], "scores": out["log_probability"][:, None]}
        out = decoding.beam_search(self.step, state, batch, self.start_id, self.end_id, max_length, beam_width,
                                   length_penalty, self.pad_id)
        return {"token_ids": out["token_ids"], "scores": out["scores"]}

    def get_config(self):
        return {"name": self.name, "image_encoder": keras.layers.serialize(self.image_encoder),
                "decoder": keras.layers.serialize(self.decoder), "sequence_length": self.sequence_length, "start_id": self.start_id, "end_id": self.end_id,
                "pad_id": self.pad_id, "label_smoothing": self.label_smoothing,
                "attention_regularizer": self.attention_regularizer}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
