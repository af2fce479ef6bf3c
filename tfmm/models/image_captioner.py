import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfmm import decoding
from tfmm.errors import TfmmError
from tfmm.models.image_captioner_backbone import ImageCaptionerBackbone
from tfmm.models.image_captioner_preprocessor import ImageCaptionerPreprocessor
from tfmm.models.task import Task, check_images


@keras.saving.register_keras_serializable(package="tfmm")
class ImageCaptioner(Task):
    """Captioning: an `ImageCaptionerBackbone` trained with a masked cross-entropy (padding ignored),
    label smoothing as an option, and for attention decoders the doubly stochastic regulariser
    λ·Σ_regions (1 − Σ_words α)² (Show, Attend and Tell), which asks every region to be looked at
    about once over a caption.

    `generate(images, ...)` decodes in TensorFlow ops (greedy, sampling or beam search), the same code
    that runs inside the exported SavedModel; `caption(images, beam_width)` takes raw images and
    returns strings. `max_length`, `length_penalty` and `max_beam_width` are the decoding defaults
    the model was trained with.
    """

    backbone_cls = ImageCaptionerBackbone
    preprocessor_cls = ImageCaptionerPreprocessor

    def __init__(self, backbone, preprocessor=None, label_smoothing=0.0, attention_regularizer=0.0, max_length=None,
                 length_penalty=0.0, max_beam_width=8, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        inputs = backbone.input
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.label_smoothing, self.attention_regularizer = label_smoothing, attention_regularizer
        self.max_length = min(max_length or backbone.max_positions, backbone.max_positions)
        self.length_penalty, self.max_beam_width = length_penalty, max_beam_width
        self.token_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing,
                                                               reduction=None)
        self.token_accuracy = keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")

    @property
    def start_id(self):
        return self.preprocessor.tokenizer.start_id

    @property
    def end_id(self):
        return self.preprocessor.tokenizer.end_id

    @property
    def pad_id(self):
        return self.preprocessor.tokenizer.pad_id

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
        regions = self.backbone.image_encoder(images, training=False)["sequence_output"]
        return self.backbone.decoder.initial_state(regions, max_length)

    def step(self, token_ids, state, index):
        logits, state = self.backbone.decoder.step(token_ids, state, index)
        never = ops.one_hot(self.pad_id, ops.shape(logits)[-1]) + ops.one_hot(self.start_id, ops.shape(logits)[-1])
        return ops.where(never[None] > 0, decoding.NEG_INF, logits), state  # a caption never emits [PAD] or [CLS]

    def generate(self, images, max_length, beam_width=1, length_penalty=0.0, temperature=0.0, top_k=0, top_p=1.0,
                 seed=(0, 0), sample=False):
        """Float images → captions as token ids. Beam search (`sample=False`; width 1 is greedy) returns
        `token_ids` (batch, beams, max_length) and `scores` (batch, beams), best first; `sample=True`
        draws with temperature / top-k / top-p → `token_ids` (batch, 1, max_length) and their
        log-probability as `scores`."""
        batch = ops.shape(images)[0]
        state = self.initial_state(images, max_length)
        if sample:
            out = decoding.sample(self.step, state, batch, self.start_id, self.end_id, max_length, temperature, top_k,
                                  top_p, seed, self.pad_id)
            return {"token_ids": out["token_ids"][:, None], "scores": out["log_probability"][:, None]}
        out = decoding.beam_search(self.step, state, batch, self.start_id, self.end_id, max_length, beam_width,
                                   length_penalty, self.pad_id)
        return {"token_ids": out["token_ids"], "scores": out["scores"]}

    def caption_details(self, images, beam_width=1, length_penalty=None, max_length=None, sampling=None, batch_size=64):
        """Raw images → per image a list of (caption, score), best first, and the token ids of the best:
        beam search (width 1 = greedy), or with `sampling` (a `tfmm.config.SamplingConfig`) one caption
        drawn with its temperature / top-k / top-p / seed."""
        images = check_images(images)
        max_length = self.max_length if max_length is None else max_length
        if not 1 <= max_length <= self.backbone.max_positions:
            raise TfmmError(f"max_length must be between 1 and {self.backbone.max_positions}, got {max_length}")
        if not 1 <= beam_width <= self.max_beam_width:
            raise TfmmError(f"beam width must be between 1 and {self.max_beam_width}, got {beam_width}")
        alpha = self.length_penalty if length_penalty is None else length_penalty
        settings = {"max_length": tf.constant(max_length), "width": tf.constant(beam_width), "alpha": tf.constant(float(alpha))}
        if sampling is not None:
            settings.update(temperature=tf.constant(float(sampling.temperature)), top_k=tf.constant(sampling.top_k),
                            top_p=tf.constant(float(sampling.top_p)), seed=tf.constant([sampling.seed, 0], tf.int64))

        def run(images, **settings):
            floats = self.preprocessor.convert_images(images)
            if "seed" in settings:
                return self.generate(floats, settings["max_length"], temperature=settings["temperature"],
                                     top_k=settings["top_k"], top_p=settings["top_p"], seed=settings["seed"], sample=True)
            return self.generate(floats, settings["max_length"], settings["width"], settings["alpha"])

        function = self.graph_function("sample" if sampling is not None else "beam", run)
        out = self.run_in_batches(lambda images: function(images, **settings), {"images": images}, batch_size)
        decode = self.preprocessor.tokenizer.decode_numpy
        captions = [[(decode(ids), float(score)) for ids, score in zip(row, scores)]
                    for row, scores in zip(out["token_ids"], out["scores"])]
        return {"captions": captions, "token_ids": out["token_ids"][:, 0]}

    def caption(self, images, beam_width=1):
        """Raw images (uint8 (n, H, W, 3) or encoded bytes) → one caption each."""
        return [beams[0][0] for beams in self.caption_details(images, beam_width)["captions"]]

    def attention_maps(self, image, caption_ids):
        """Per caption token (the end token included), the decoder's attention over the image regions:
        (tokens, grid, grid). `image` is one raw image (uint8 (H, W, 3) or encoded bytes)."""
        length = self.backbone.sequence_length
        tokens = [self.start_id, *caption_ids][:length]
        inputs = np.full((1, length), self.pad_id, np.int32)
        inputs[0, :len(tokens)] = tokens
        images = self.preprocessor.convert_images(check_images([image] if isinstance(image, bytes) else image[None]))
        outputs = self({"images": images, "token_ids": tf.constant(inputs)}, training=False)
        weights = ops.convert_to_numpy(outputs["attention"])[0]
        side = int(round(math.sqrt(weights.shape[-1])))
        return weights[:len(caption_ids)].reshape(len(caption_ids), side, side)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "attention_regularizer": self.attention_regularizer, "max_length": self.max_length,
                "length_penalty": self.length_penalty, "max_beam_width": self.max_beam_width}
