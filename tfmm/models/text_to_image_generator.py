import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfmm import decoding
from tfmm.config import SamplingConfig
from tfmm.errors import TfmmError
from tfmm.models.task import Task, check_images
from tfmm.models.text_to_image_backbone import TextToImageBackbone
from tfmm.models.text_to_image_preprocessor import TextToImagePreprocessor
from tfmm.models.vqvae import to_uint8


@keras.saving.register_keras_serializable(package="tfmm")
class TextToImageGenerator(Task):
    """Text to image: a `TextToImageBackbone` (the token transformer) over the image tokens of a trained
    `VQVAEBackbone`, which turns sampled tokens back into pixels (its weights travel in the preset).

    `fit` on raw `{"prompts", "image_ids"}` batches: cross-entropy of every image token. Sampling uses
    `tfmm.decoding.sample` with a key/value cache and classifier-free guidance (`guidance_scale` ≠ 1:
    the logits of the prompt and of the empty prompt are mixed, uncond + s·(cond − uncond)). Raw inputs:
    `generate(prompts, seed)` → uint8 images, `edit(image, box or cells, prompt)`; `sampling` holds the default
    temperature / top-k (0 = every code) / top-p.
    """

    backbone_cls = TextToImageBackbone
    preprocessor_cls = TextToImagePreprocessor

    def __init__(self, backbone, vqvae, preprocessor=None, guidance_scale=3.0, temperature=1.0, top_k=0, top_p=1.0,
                 **kwargs):
        vqvae = keras.layers.deserialize(vqvae) if isinstance(vqvae, dict) else vqvae
        vqvae.trainable = False  # trained in stage 1; frozen here (else Keras warns that it gets no gradients)
        self.backbone, self.vqvae, self.preprocessor = backbone, vqvae, preprocessor
        inputs = backbone.input
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.guidance_scale = guidance_scale
        self.sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        self.token_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.token_accuracy = keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")

    @property
    def grid_size(self):
        return self.vqvae.grid_size

    @property
    def image_size(self):
        return self.vqvae.image_size

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.token_loss(y, y_pred["logits"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.token_accuracy.update_state(y, y_pred["logits"])
        return self.get_metrics_result()

    # ------------------------------------------------------------------------------------- sampling

    def null_ids(self):
        """The empty prompt's token ids (1, L): what guidance mixes against."""
        return self.preprocessor.tokenize(tf.constant([""]))["token_ids"]

    def sample_ids(self, text_ids, guidance_scale=1.0, temperature=1.0, top_k=0, top_p=1.0, seed=(0, 0),
                   forced_ids=None, use_cache=True):
        """Samples image token sequences (batch, image_tokens) for `text_ids` (tensors; the SavedModel
        runs this). `forced_ids` (batch, image_tokens), -1 where free: tokens kept as given (editing)."""
        backbone = self.backbone
        batch = ops.shape(text_ids)[0]
        guided = not (isinstance(guidance_scale, (int, float)) and guidance_scale == 1.0)
        rows = ops.concatenate([text_ids, ops.tile(self.null_ids(), (batch, 1))], 0) if guided else text_ids
        if use_cache:
            state, step = backbone.prefill(rows), backbone.step
        else:
            state = {"text_ids": rows, "image_ids": ops.zeros((ops.shape(rows)[0], backbone.image_tokens), "int32")}
            step = backbone.step_without_cache

        def guided_step(token_ids, state, index):
            both = ops.concatenate([token_ids, token_ids], 0) if guided else token_ids
            logits, state = step(both, state, index)
            if guided:
                conditional, unconditional = logits[:batch], logits[batch:]
                logits = unconditional + guidance_scale * (conditional - unconditional)
            return logits, state

        out = decoding.sample(guided_step, state, batch, backbone.start_code, -1, backbone.image_tokens, temperature,
                              top_k, top_p, seed, pad_id=0, forced_ids=forced_ids)
        return out["token_ids"]

    def log_likelihood(self, text_ids, image_ids):
        """Sum over the image tokens of their log-probability under the model (batch,)."""
        logits = self.backbone({"text_ids": text_ids, "image_ids": image_ids}, training=False)["logits"]
        log_probabilities = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(log_probabilities, ops.cast(image_ids, "int32")[..., None], axis=-1)[..., 0]
        return ops.sum(picked, axis=-1)

    def sample_tokens(self, prompts, seed=0, sampling=None, guidance_scale=None, forced_ids=None, use_cache=True,
                      batch_size=64):
        """Prompts → token grids (n, g, g), one per prompt (repeat a prompt for more). `sampling` (a
        `SamplingConfig`) defaults to the model's; its `seed` is ignored in favour of `seed`."""
        prompts = self.preprocessor.check_texts(prompts, "prompt")
        sampling = sampling or self.sampling
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        # The settings are Python values traced into the graph: one function per distinct setting (keying only on
        # whether guidance is on reused the first call's temperature, top-k, top-p and scale for every later call).
        name = (f"sample/{'cache' if use_cache else 'nocache'}/{'forced' if forced_ids is not None else 'free'}/{float(scale)}/"
                f"{float(sampling.temperature)}/{int(sampling.top_k)}/{float(sampling.top_p)}")

        def run(prompts, seed, forced_ids=None):
            text_ids = self.preprocessor.tokenize(prompts)["token_ids"]
            tokens = self.sample_ids(text_ids, scale if scale != 1 else 1.0, sampling.temperature, sampling.top_k,
                                     sampling.top_p, tf.stack([seed, tf.constant(1, tf.int64)]), forced_ids, use_cache)
            return {"tokens": tokens}

        function = self.graph_function(name, run)
        grids = []
        for start in range(0, len(prompts), batch_size):
            args = {"prompts": tf.constant(prompts[start:start + batch_size]), "seed": tf.constant(seed + start, tf.int64)}
            if forced_ids is not None:
                args["forced_ids"] = tf.constant(np.asarray(forced_ids[start:start + batch_size]), tf.int32)
            grids.append(function(**args)["tokens"].numpy())
        return np.concatenate(grids).reshape(len(prompts), self.grid_size, self.grid_size)

    def decode(self, tokens, batch_size=128):
        """Token grids (n, g, g) → uint8 images (n, S, S, 3)."""
        def run(tokens):
            return {"images": to_uint8(self.vqvae.decode(tokens))}

        return self.run_in_batches(self.graph_function("decode", run), {"tokens": np.asarray(tokens, np.int32)}, batch_size)["images"]

    def encode(self, images, batch_size=128):
        """Raw images → token grids (n, g, g)."""
        def run(images):
            return {"tokens": self.vqvae.encode(self.preprocessor.convert_images(images))}

        return self.run_in_batches(self.graph_function("encode", run), {"images": check_images(images)}, batch_size)["tokens"]

    def generate(self, prompts, seed=0, sampling=None, guidance_scale=None):
        """Prompts → uint8 images (n, S, S, 3), one per prompt; the same seed gives the same images."""
        return self.decode(self.sample_tokens(list(prompts), seed, sampling, guidance_scale))

    def box_cells(self, box):
        """(g, g) bool: the token cells a box (x0, y0, x1, y1 in pixels of the model's image size) meets."""
        size, grid = self.image_size, self.grid_size
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
            raise TfmmError(f"region {tuple(box)} is not inside the {size}×{size} image (x0 < x1, y0 < y1, 0…{size})")
        cell = size / grid
        cells = np.zeros((grid, grid), bool)
        cells[int(y0 // cell):int(math.ceil(y1 / cell)), int(x0 // cell):int(math.ceil(x1 / cell))] = True
        return cells

    def mask_cells(self, mask):
        """(g, g) bool: the token cells a pixel mask (H, W; > 0 = marked, any size) marks any pixel of."""
        grid = self.grid_size
        mask = np.asarray(mask) > 0
        if mask.ndim != 2:
            raise TfmmError(f"an edit mask must be (height, width), got shape {mask.shape}")
        area = tf.image.resize(tf.constant(mask, tf.float32)[None, ..., None], (grid, grid), method="area")
        return area.numpy()[0, ..., 0] > 0

    def edit(self, image, region, prompt, candidates=8, seed=0, sampling=None, guidance_scale=None):
        """Re-samples the tokens of `region` for `prompt` and keeps every other token; of `candidates`
        samples keeps the one the model finds most likely as a whole image (so the tokens after the region,
        which the causal model cannot see while sampling, count). `image`: one raw image; `region`: a box
        (x0, y0, x1, y1 in pixels of the model's image size) or the cells to redraw, (g, g) bool (`box_cells`,
        `mask_cells`). Returns (uint8 image, {"cells", "tokens", "redrawn" (g, g) bool})."""
        grid = self.grid_size
        cells = np.asarray(region, bool) if np.ndim(region) == 2 else self.box_cells(region)
        if cells.shape != (grid, grid) or not cells.any():
            raise TfmmError(f"the region to redraw marks no token cell of the {grid}×{grid} grid")
        if candidates < 1:
            raise TfmmError(f"edit candidates must be at least 1, got {candidates}")
        tokens = self.encode([image] if isinstance(image, bytes) else np.asarray(image)[None])[0]
        forced = np.where(cells, -1, tokens)
        forced = np.repeat(forced.reshape(1, -1), candidates, axis=0)
        drawn = self.sample_tokens([prompt] * candidates, seed, sampling, guidance_scale, forced_ids=forced)
        drawn = drawn.reshape(candidates, -1)
        text_ids = np.repeat(self.preprocessor.tokenize_numpy([prompt])["token_ids"], candidates, axis=0)
        scores = ops.convert_to_numpy(self.log_likelihood(tf.constant(text_ids), tf.constant(drawn)))
        best = drawn[int(np.argmax(scores))].reshape(1, grid, grid)
        return self.decode(best)[0], {"cells": int(cells.sum()), "tokens": grid * grid, "redrawn": cells}

    def get_config(self):
        return {**super().get_config(), "vqvae": keras.layers.serialize(self.vqvae), "guidance_scale": self.guidance_scale,
                "temperature": self.sampling.temperature, "top_k": self.sampling.top_k, "top_p": self.sampling.top_p}
