import keras
import keras_hub


@keras.saving.register_keras_serializable(package="tfmm")
class ImageCaptionerBackbone(keras_hub.models.Backbone):
    """An image encoder's region grid + a caption decoder (`GRUAttentionDecoder` or `TransformerCaptionDecoder`).

    Inputs: `images` (batch, S, S, 3) float 0..1 and `token_ids` (batch, L): a caption from its start
    token (teacher forcing). Outputs: `logits` (batch, L, vocabulary), float32, for the next token at
    each position, and `attention` (batch, L, regions). The decoder's `initial_state` / `step` decode one
    token at a time with the same weights (`ImageCaptioner.generate`).
    """

    def __init__(self, image_encoder, decoder, sequence_length, dtype=None, **kwargs):
        image_encoder, decoder = (keras.layers.deserialize(x) if isinstance(x, dict) else x for x in (image_encoder, decoder))
        self.image_encoder, self.decoder = image_encoder, decoder
        images = keras.Input(tuple(image_encoder.input.shape[1:]), name="images")
        token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        decoded = decoder({"token_ids": token_ids, "regions": image_encoder(images)["sequence_output"]})
        outputs = {"logits": keras.layers.Identity(dtype="float32", name="logits")(decoded["logits"]),
                   "attention": keras.layers.Identity(dtype="float32", name="attention")(decoded["attention"])}
        super().__init__(inputs={"images": images, "token_ids": token_ids}, outputs=outputs, dtype=dtype, **kwargs)
        self.sequence_length = sequence_length

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

    def get_config(self):
        config = super().get_config()
        config.update(image_encoder=keras.layers.serialize(self.image_encoder),
                      decoder=keras.layers.serialize(self.decoder), sequence_length=self.sequence_length)
        return config
