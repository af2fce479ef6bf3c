"""The text-to-image tasks: the VQ-VAE (stage 1), the token generator (stage 2) and the scene judge."""

import numpy as np
import pytest
import tensorflow as tf

from tfmm.config import SamplingConfig
from tfmm.errors import TfmmError
from tfmm.models import VQVAE
from tfmm.models.vqvae import edge_loss
from tfmm.testing import raw_dataset, tiny_tasks

PROMPTS = ["a small red circle", "a large blue star left of a white shape", "a green square"]


@pytest.fixture(scope="module")
def generator():
    return tiny_tasks.generator()


def token_inputs(generator, seed=0):
    rng = np.random.default_rng(seed)
    return generator.preprocessor({"prompts": tf.constant(PROMPTS), "image_ids": rng.integers(0, 8, (3, 16)).astype("int32")})[0]


def test_cached_steps_give_the_full_pass_logits(generator):
    x = token_inputs(generator)
    full = generator.backbone(x, training=False)["logits"].numpy()
    state = generator.backbone.prefill(x["text_ids"])
    token = tf.fill([3], generator.backbone.start_code)
    for index in range(16):
        logits, state = generator.backbone.step(token, state, index)
        np.testing.assert_allclose(logits.numpy(), full[:, index], atol=1e-5)
        token = x["image_ids"][:, index]


def test_sampling_with_and_without_cache_agrees_and_keeps_forced_tokens(generator):
    cached = generator.sample_tokens(PROMPTS, seed=4, sampling=SamplingConfig(top_k=5))
    uncached = generator.sample_tokens(PROMPTS, seed=4, sampling=SamplingConfig(top_k=5), use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (3, 4, 4) and cached.max() < 8
    forced = np.full((3, 16), -1)
    forced[:, ::2] = 7
    edited = generator.sample_tokens(PROMPTS, seed=4, forced_ids=forced).reshape(3, 16)
    assert (edited[:, ::2] == 7).all()
    # Guidance 1 is no guidance; a low temperature with guidance still gives valid tokens.
    np.testing.assert_array_equal(generator.sample_tokens(PROMPTS, seed=4, guidance_scale=1.0),
                                  generator.sample_ids(generator.preprocessor.tokenize(tf.constant(PROMPTS))["token_ids"],
                                                       1.0, 1.0, 0, 1.0, (4, 1)).numpy().reshape(3, 4, 4))


def test_generate_is_seeded_and_edit_keeps_the_tokens_outside_the_region(generator):
    first, again = generator.generate(PROMPTS[:2], seed=3), generator.generate(PROMPTS[:2], seed=3)
    assert first.dtype == np.uint8 and first.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(first, again)
    image = first[0]
    edited, info = generator.edit(image, (0, 0, 8, 8), "a green square", candidates=2, seed=1)
    assert (info["cells"], info["tokens"]) == (4, 16) and info["redrawn"][:2, :2].all()
    before, after = generator.encode(image[None])[0], generator.encode(edited[None])[0]
    # Decoding and re-encoding can move a token; the tokens edit kept are decoded unchanged where nothing nearby changed.
    assert edited.shape == image.shape and before.shape == after.shape
    with pytest.raises(TfmmError, match="is not inside the 16×16 image"):
        generator.edit(image, (0, 0, 20, 8), "a green square")


def test_log_likelihood_matches_numpy(generator):
    x = token_inputs(generator)
    logits = generator.backbone(x, training=False)["logits"].numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, x["image_ids"].numpy()[..., None], -1).sum((1, 2))
    np.testing.assert_allclose(generator.log_likelihood(x["text_ids"], x["image_ids"]).numpy(), expected, rtol=1e-5)


def test_vqvae_encodes_decodes_and_reports_its_metrics():
    task = tiny_tasks.vqvae()
    raw = tiny_tasks.images(4, size=16)
    out = task(task.preprocessor({"images": raw}), training=False)
    tokens = task.encode(raw)
    assert tokens.shape == (4, 4, 4)
    np.testing.assert_array_equal(tokens, out["indices"].numpy())
    expected = np.round(np.clip(out["reconstruction"].numpy(), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(task.decode(tokens), expected)
    task.compile(optimizer="adam", jit_compile=False)
    logs = task.fit(raw_dataset({"images": raw}, batch_size=4).repeat(), steps_per_epoch=2, epochs=2, verbose=0).history
    for key in ("loss", "mse", "psnr", "codebook_usage", "perplexity"):
        assert key in logs, key
    assert 0 < logs["codebook_usage"][-1] <= 1 and 1 <= logs["perplexity"][-1] <= 8
    assert logs["psnr"][-1] >= -10 * np.log10(logs["mse"][-1]) - 1e-3  # mean of per-image PSNR ≥ PSNR of the mean MSE


def test_vqvae_edge_weight_adds_the_outline_error_and_round_trips():
    """edge_weight w: the loss grows by w × (MSE of vertical + MSE of horizontal neighbour differences), NumPy's."""
    task = tiny_tasks.vqvae()
    edged = VQVAE(task.backbone, task.preprocessor, edge_weight=0.5)
    batch = task.preprocessor({"images": tiny_tasks.images(3, size=16)})
    out = task(batch, training=False)
    x, r = batch["images"].numpy().astype(np.float64), out["reconstruction"].numpy().astype(np.float64)
    edges = sum(np.mean((np.diff(x, axis=a) - np.diff(r, axis=a)) ** 2) for a in (1, 2))
    plain = float(task.compute_loss(batch, y_pred=out, training=False))
    assert float(edged.compute_loss(batch, y_pred=out, training=False)) == pytest.approx(plain + 0.5 * edges, rel=1e-5)
    assert float(edge_loss(batch["images"], batch["images"])) == 0.0
    assert VQVAE.from_config(edged.get_config()).edge_weight == 0.5


def _greedy_tokens(generator, scale):
    """Oracle: argmax decoding step by step with the cache, guidance mixed as uncond + scale·(cond − uncond)."""
    text_ids = generator.preprocessor.tokenize(tf.constant(PROMPTS))["token_ids"]
    rows = tf.concat([text_ids, tf.tile(generator.null_ids(), (3, 1))], 0)
    state, token, tokens = generator.backbone.prefill(rows), tf.fill([3], generator.backbone.start_code), []
    for index in range(16):
        logits, state = generator.backbone.step(tf.concat([token, token], 0), state, index)
        token = tf.cast(tf.argmax(logits[3:] + scale * (logits[:3] - logits[3:]), -1), tf.int32)
        tokens.append(token.numpy())
    return np.stack(tokens, 1)


def test_each_call_samples_with_its_own_settings(generator):
    """Settings change between calls in one process (an eval sweep): each call honours its own, as a fresh
    task would; top-k 1 is greedy, so it ignores the seed and equals the oracle's argmax decoding."""
    greedy = SamplingConfig(top_k=1)
    first = generator.sample_tokens(PROMPTS, seed=4, sampling=SamplingConfig(temperature=1.0), guidance_scale=3.0)
    for scale in (3.0, 0.5):
        got = generator.sample_tokens(PROMPTS, seed=4, sampling=greedy, guidance_scale=scale)
        np.testing.assert_array_equal(got.reshape(3, 16), _greedy_tokens(generator, scale), err_msg=f"scale {scale}")
        np.testing.assert_array_equal(got, generator.sample_tokens(PROMPTS, seed=9, sampling=greedy, guidance_scale=scale))
    generator._compiled_functions.clear()  # a fresh start: the first setting again gives the first result
    np.testing.assert_array_equal(generator.sample_tokens(PROMPTS, seed=4, sampling=SamplingConfig(temperature=1.0),
                                                          guidance_scale=3.0), first)
