import numpy as np
import pytest
import tensorflow as tf

from tfmm.encoders import build_image_encoder
from tfmm.layers import build_decoder
from tfmm.models import ImageCaptioner
from tfmm.testing import assert_keras_round_trip

VOCABULARY, LENGTH = 30, 9


def captioner(decoder, attention_regularizer=0.0, label_smoothing=0.0):
    encoder = build_image_encoder("cnn", "tiny", 32)
    regions = encoder.output["sequence_output"].shape[1]
    decoder = build_decoder(decoder, vocabulary_size=VOCABULARY, sequence_length=LENGTH, num_regions=regions,
                            hidden_dim=32, embedding_dim=16, attention_dim=16, num_layers=2, num_heads=2,
                            intermediate_dim=32, dropout=0.0)
    return ImageCaptioner(encoder, decoder, LENGTH, start_id=1, end_id=2, pad_id=0,
                          attention_regularizer=attention_regularizer, label_smoothing=label_smoothing)


def inputs(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"images": rng.random((batch, 32, 32, 3)).astype("float32"),
            "token_ids": rng.integers(3, VOCABULARY, (batch, LENGTH)).astype("int32")}


@pytest.fixture(scope="module", params=["gru_attention", "transformer"])
def model(request):
    return captioner(request.param)


def test_decoding_one_token_at_a_time_gives_the_teacher_forced_logits(model):
    x = inputs()
    expected = model(x, training=False)["logits"].numpy()
    state = model.initial_state(tf.constant(x["images"]), LENGTH)
    for position in range(LENGTH):
        logits, state = model.decoder.step(tf.constant(x["token_ids"][:, position]), state, position)
        np.testing.assert_allclose(logits.numpy(), expected[:, position], atol=2e-5)


def test_attention_is_a_distribution_over_the_regions(model):
    attention = model(inputs(), training=False)["attention"].numpy()
    assert attention.shape == (3, LENGTH, model.num_regions)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert (attention >= 0).all()


def test_round_trip_and_generate(model):
    x = inputs()
    loaded = assert_keras_round_trip(model, x, atol=1e-5)
    images = tf.constant(x["images"])
    out = model.generate(images, 6, beam_width=3)
    again = loaded.generate(images, 6, beam_width=3)
    assert out["token_ids"].shape == (3, 3, 6)
    np.testing.assert_array_equal(out["token_ids"], again["token_ids"])
    sampled = model.generate(images, 6, temperature=1.0, top_k=5, seed=(1, 1), sample=True)["token_ids"].numpy()
    # Neither [PAD] mid-caption nor [CLS] is ever generated.
    assert not (sampled == 1).any()
    for row in sampled[:, 0]:
        tail = row[np.argmax(row == 2):] if (row == 2).any() else row[len(row):]
        assert not (row[: len(row) - len(tail)] == 0).any()


def loss(model, y, weights, attention=None):
    x = inputs()
    predictions = dict(model(x, training=False))
    if attention is not None:
        predictions["attention"] = attention
    return float(model.compute_loss(x, tf.constant(y), predictions, tf.constant(weights)))


def test_loss_ignores_padding_and_adds_the_attention_regulariser():
    model = captioner("gru_attention")
    rng = np.random.default_rng(1)
    y = rng.integers(3, VOCABULARY, (3, LENGTH)).astype("int32")
    weights = np.ones((3, LENGTH), np.float32)
    weights[:, 5:] = 0
    changed = y.copy()
    changed[:, 5:] = 7
    assert loss(model, y, weights) == pytest.approx(loss(model, changed, weights), rel=1e-6)
    logits = model(inputs(), training=False)["logits"].numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, y[..., None], -1)[..., 0]
    assert loss(model, y, weights) == pytest.approx(-(picked * weights).sum() / weights.sum(), rel=1e-5)

    regularised = captioner("gru_attention", attention_regularizer=0.5)
    regularised.set_weights(model.get_weights())
    uniform = np.full((3, LENGTH, model.num_regions), 1 / model.num_regions, np.float32)
    looked = 5 / model.num_regions  # five real words, each looking at every region equally
    expected = 0.5 * model.num_regions * (1 - looked) ** 2
    assert loss(regularised, y, weights, tf.constant(uniform)) - loss(model, y, weights, tf.constant(uniform)) == \
        pytest.approx(expected, rel=1e-4)
    smoothed = captioner("gru_attention", label_smoothing=0.1)
    smoothed.set_weights(model.get_weights())
    assert loss(smoothed, y, weights) != pytest.approx(loss(model, y, weights), rel=1e-4)
