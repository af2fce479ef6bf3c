import numpy as np
import pytest
import tensorflow as tf

from tfmm.config import SamplingConfig
from tfmm.errors import TfmmError
from tfmm.testing import check_keras_round_trip, tiny_tasks

LENGTH = 9
CAPTIONS = np.array(["a small red circle", "a large blue star left of a white shape", "a green square"])


def raw():
    return {"images": tiny_tasks.images(3), "captions": CAPTIONS}


@pytest.fixture(scope="module", params=["gru_attention", "transformer"])
def model(request):
    return tiny_tasks.captioner(request.param, LENGTH)


def test_preprocessor_shifts_captions_for_teacher_forcing():
    task = tiny_tasks.captioner("transformer", LENGTH)
    x, y, weights = task.preprocessor(raw())
    tokens = task.preprocessor.tokenize(CAPTIONS)
    np.testing.assert_array_equal(x["token_ids"], tokens["token_ids"][:, :-1])
    np.testing.assert_array_equal(y, tokens["token_ids"][:, 1:])
    np.testing.assert_array_equal(weights, tokens["padding_mask"][:, 1:])


def test_decoding_one_token_at_a_time_gives_the_teacher_forced_logits(model):
    x = model.preprocessor(raw())[0]
    expected = model(x, training=False)["logits"].numpy()
    state = model.initial_state(x["images"], LENGTH)
    for position in range(LENGTH):
        logits, state = model.backbone.decoder.step(x["token_ids"][:, position], state, position)
        np.testing.assert_allclose(logits.numpy(), expected[:, position], atol=2e-5)


def test_attention_is_a_distribution_over_the_regions(model):
    attention = model(model.preprocessor(raw())[0], training=False)["attention"].numpy()
    assert attention.shape == (3, LENGTH, model.backbone.num_regions)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert (attention >= 0).all()


def test_round_trip_and_decoding(model):
    x = model.preprocessor(raw())[0]
    loaded = check_keras_round_trip(model, x)
    out = model.generate(x["images"], 6, beam_width=3)
    assert out["token_ids"].shape == (3, 3, 6)
    np.testing.assert_array_equal(out["token_ids"], loaded.generate(x["images"], 6, beam_width=3)["token_ids"])
    sampled = model.caption_details(tiny_tasks.images(3), sampling=SamplingConfig(top_k=5, seed=1))
    again = model.caption_details(tiny_tasks.images(3), sampling=SamplingConfig(top_k=5, seed=1))
    assert sampled["captions"] == again["captions"]  # one seed, one caption
    tokenizer = model.preprocessor.tokenizer
    for row in sampled["token_ids"]:
        assert tokenizer.start_id not in row  # a caption never emits [CLS] …
        ended = np.cumsum(row == tokenizer.end_id) > 0
        assert not ((row == tokenizer.pad_id) & ~ended).any()  # … nor [PAD] before its end


@pytest.mark.parametrize("options,message", [({"beam_width": 9}, "beam width must be between 1 and 8"),
                                             ({"max_length": 0}, "max_length must be between 1 and")])
def test_decoding_settings_out_of_range_are_named(model, options, message):
    with pytest.raises(TfmmError, match=message):
        model.caption_details(tiny_tasks.images(1), **options)


def loss(model, y, weights, attention=None):
    x = model.preprocessor(raw())[0]
    predictions = dict(model(x, training=False))
    if attention is not None:
        predictions["attention"] = attention
    return float(model.compute_loss(x, tf.constant(y), predictions, tf.constant(weights)))


def test_loss_ignores_padding_and_adds_the_attention_regulariser():
    model = tiny_tasks.captioner("gru_attention", LENGTH)
    vocabulary = model.preprocessor.vocabulary_size
    y = np.random.default_rng(1).integers(3, vocabulary, (3, LENGTH)).astype("int32")
    weights = np.ones((3, LENGTH), np.float32)
    weights[:, 5:] = 0
    changed = y.copy()
    changed[:, 5:] = 7
    assert loss(model, y, weights) == pytest.approx(loss(model, changed, weights), rel=1e-6)
    logits = model(model.preprocessor(raw())[0], training=False)["logits"].numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, y[..., None], -1)[..., 0]
    assert loss(model, y, weights) == pytest.approx(-(picked * weights).sum() / weights.sum(), rel=1e-5)

    regions = model.backbone.num_regions
    regularised = tiny_tasks.captioner("gru_attention", LENGTH, attention_regularizer=0.5)
    regularised.set_weights(model.get_weights())
    uniform = np.full((3, LENGTH, regions), 1 / regions, np.float32)
    looked = 5 / regions  # five real words, each looking at every region equally
    expected = 0.5 * regions * (1 - looked) ** 2
    assert loss(regularised, y, weights, tf.constant(uniform)) - loss(model, y, weights, tf.constant(uniform)) == \
        pytest.approx(expected, rel=1e-4)
    smoothed = tiny_tasks.captioner("gru_attention", LENGTH, label_smoothing=0.1)
    smoothed.set_weights(model.get_weights())
    # label smoothing ε: the target is (1 - ε) on the word and ε / V spread over the whole vocabulary
    spread = log_softmax.mean(-1)
    expected_smoothed = -(((1 - 0.1) * picked + 0.1 * spread) * weights).sum() / weights.sum()
    assert loss(smoothed, y, weights) == pytest.approx(expected_smoothed, rel=1e-5)
