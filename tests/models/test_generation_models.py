import numpy as np
import pytest
import tensorflow as tf

from tfmm.models import TextToImageTransformer, VQVAE
from tfmm.testing import assert_keras_round_trip


@pytest.fixture(scope="module")
def transformer():
    return TextToImageTransformer(40, 6, 16, 9, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=32,
                                  dropout=0.0)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"text_ids": rng.integers(0, 40, (3, 6)).astype("int32"), "image_ids": rng.integers(0, 16, (3, 9)).astype("int32")}


def test_cached_steps_give_the_full_pass_logits(transformer):
    x = inputs()
    full = transformer(x, training=False)["logits"].numpy()
    state = transformer.prefill(tf.constant(x["text_ids"]))
    token = tf.fill([3], transformer.start_code)
    for index in range(9):
        logits, state = transformer.step(token, state, index)
        np.testing.assert_allclose(logits.numpy(), full[:, index], atol=1e-5)
        token = tf.constant(x["image_ids"][:, index])


def test_generation_with_and_without_cache_agrees_and_keeps_forced_tokens(transformer):
    text = tf.constant(inputs()["text_ids"])
    cached = transformer.generate(text, top_k=5, seed=(4, 2)).numpy()
    uncached = transformer.generate(text, top_k=5, seed=(4, 2), use_cache=False).numpy()
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (3, 9) and cached.max() < 16
    forced = np.full((3, 9), -1)
    forced[:, ::2] = 7
    edited = transformer.generate(text, seed=(4, 2), forced_ids=tf.constant(forced)).numpy()
    assert (edited[:, ::2] == 7).all()
    null = tf.constant(inputs(1)["text_ids"][:1])
    np.testing.assert_array_equal(transformer.generate(text, null, 1.0, seed=(4, 2)).numpy(),
                                  transformer.generate(text, seed=(4, 2)).numpy())
    guided = transformer.generate(text, null, 4.0, temperature=1e-3, seed=(4, 2)).numpy()
    assert guided.shape == (3, 9)


def test_log_likelihood_and_round_trip(transformer):
    x = inputs()
    logits = transformer(x, training=False)["logits"].numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, x["image_ids"][..., None], -1).sum((1, 2))
    np.testing.assert_allclose(transformer.log_likelihood(x["text_ids"], x["image_ids"]).numpy(), expected, rtol=1e-5)
    assert_keras_round_trip(transformer, x, atol=1e-5)


def test_vqvae_encodes_decodes_and_reports_its_metrics():
    model = VQVAE(16, 4, hidden_dim=16, residual_blocks=1, num_codes=8, code_dim=4, ema_decay=0.9)
    images = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")
    out = model({"images": images}, training=False)
    tokens = model.encode(images)
    assert tokens.shape == (4, 4, 4) and out["indices"].shape == (4, 4, 4)
    np.testing.assert_array_equal(tokens.numpy(), out["indices"].numpy())
    np.testing.assert_allclose(model.decode(tokens).numpy(), out["reconstruction"].numpy(), atol=1e-5)
    model.compile(optimizer="adam")
    logs = model.fit(images, images, epochs=2, verbose=0).history
    for key in ("loss", "mse", "psnr", "codebook_usage", "perplexity"):
        assert key in logs, key
    assert 0 < logs["codebook_usage"][-1] <= 1 and 1 <= logs["perplexity"][-1] <= 8
    mse = logs["mse"][-1]
    assert logs["psnr"][-1] >= -10 * np.log10(mse) - 1e-3  # mean of per-image PSNR ≥ PSNR of the mean MSE
    assert_keras_round_trip(model, {"images": images}, atol=1e-5)
