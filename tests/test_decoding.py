import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfmm.decoding import beam_search, filter_logits, length_normalizer, sample

V, START, END, PAD = 6, 5, 1, 0


def markov(seed=0, scale=2.0):
    """A toy model: next-token logits depend on the last token only (PAD never chosen)."""
    table = np.random.default_rng(seed).normal(size=(V, V)) * scale
    table[:, PAD] = -1e9
    table = tf.constant(table, tf.float32)

    def step(token_ids, state, index):
        return tf.gather(table, token_ids) + state["bias"], state

    return step, tf.nn.log_softmax(table).numpy()


def all_captions(log_probabilities, max_length, alpha=0.0):
    """Every caption up to max_length tokens (ending in END, or cut at max_length), scored by brute force."""
    found = {}
    for sequence in itertools.product(range(1, V - 1), repeat=max_length):
        previous, total, tokens = START, 0.0, []
        for token in sequence:
            total += log_probabilities[previous, token]
            tokens.append(token)
            previous = token
            if token == END:
                break
        found[tuple(tokens)] = total / ((5 + len(tokens)) / 6) ** alpha
    return sorted(found.items(), key=lambda item: -item[1])


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_beam_search_finds_the_best_captions_of_a_brute_force_search(alpha):
    step, log_probabilities = markov()
    expected = all_captions(log_probabilities, 4, alpha)[:3]
    out = beam_search(step, {"bias": tf.zeros([2, V])}, 2, START, END, 4, beam_width=(V - 2) ** 4, length_penalty=alpha)
    for row in range(2):
        for k, (tokens, score) in enumerate(expected):
            got = [t for t in out["token_ids"][row, k].numpy() if t != PAD]
            assert tuple(got) == tokens
            assert out["scores"][row, k].numpy() == pytest.approx(score, abs=1e-4)


def test_narrow_beams_rank_by_normalised_score_and_width_one_is_greedy():
    step, _ = markov(seed=3)
    state = {"bias": tf.zeros([1, V])}
    greedy = sample(step, state, 1, START, END, 6)
    one = beam_search(step, state, 1, START, END, 6, beam_width=1)
    np.testing.assert_array_equal(greedy["token_ids"][0], one["token_ids"][0, 0])
    assert one["scores"][0, 0].numpy() == pytest.approx(greedy["log_probability"][0].numpy(), abs=1e-5)
    three = beam_search(step, state, 1, START, END, 6, beam_width=tf.constant(3), length_penalty=0.7)
    scores = three["scores"][0].numpy()
    assert list(scores) == sorted(scores, reverse=True) and scores[0] >= one["scores"][0, 0].numpy() - 1e-6
    generated = (three["token_ids"][0].numpy() != PAD).sum(-1)  # tokens incl. the end token
    np.testing.assert_allclose(scores, three["log_probability"][0].numpy() / ((5 + generated) / 6) ** 0.7, rtol=1e-5)


def test_decoding_stops_at_max_length_when_the_model_never_ends():
    def never_ends(token_ids, state, index):
        return tf.one_hot(tf.fill(tf.shape(token_ids), 2), V) * 10.0, state

    for out in (sample(never_ends, {}, 3, START, END, 7)["token_ids"],
                beam_search(never_ends, {}, 3, START, END, 7, beam_width=2)["token_ids"][:, 0]):
        assert out.shape == (3, 7) and (out.numpy() == 2).all()


def test_sampling_is_seeded_and_filtered():
    step, _ = markov(seed=1, scale=0.5)
    state = {"bias": tf.zeros([64, V])}

    def draw(**options):
        return sample(step, state, 64, START, END, 5, **options)["token_ids"].numpy()

    greedy = draw()
    np.testing.assert_array_equal(draw(temperature=2.0, top_k=1, seed=(1, 2)), greedy)
    np.testing.assert_array_equal(draw(temperature=2.0, top_p=1e-6, seed=(1, 2)), greedy)
    hot = draw(temperature=2.0, seed=(1, 2))
    np.testing.assert_array_equal(draw(temperature=2.0, seed=(1, 2)), hot)
    assert (hot != greedy).any() and (draw(temperature=2.0, seed=(3, 4)) != hot).any()


def test_filter_logits_matches_numpy():
    logits = np.array([[2.0, 1.0, 0.5, -1.0, 0.0]], np.float32)
    kept = lambda out: (out.numpy()[0] > -1e8).tolist()  # noqa: E731
    assert kept(filter_logits(tf.constant(logits), top_k=2)) == [True, True, False, False, False]
    probabilities = np.exp(logits[0]) / np.exp(logits[0]).sum()  # 0.54, 0.20, 0.12, 0.03, 0.07
    assert probabilities[:2].sum() < 0.8 < probabilities[:3].sum()
    assert kept(filter_logits(tf.constant(logits), top_p=0.8)) == [True, True, True, False, False]
    assert kept(filter_logits(tf.constant(logits))) == [True] * 5


def test_length_normalizer_is_gnmt():
    assert length_normalizer(7, 0.0).numpy() == 1.0
    assert length_normalizer(7, 1.0).numpy() == pytest.approx(2.0)


def test_forced_tokens_are_kept_and_a_forced_end_does_not_stop_decoding():
    step, log_probabilities = markov(3)
    state = {"bias": tf.zeros((2, V))}
    forced = np.full((2, 6), -1, np.int32)
    forced[:, :3] = [[2, END, 3], [END, 4, 4]]  # prompts that hold the end of an earlier answer
    got = sample(step, state, 2, START, END, 6, forced_ids=tf.constant(forced))["token_ids"].numpy()
    np.testing.assert_array_equal(got[:, :3], forced[:, :3])
    for row in got:  # after the prompt: greedy from its last token, then padding after the first drawn end
        previous, tail = row[2], []
        for _ in range(3):
            previous = int(np.argmax(log_probabilities[previous]))
            tail.append(previous)
            if previous == END:
                break
        np.testing.assert_array_equal(row[3:3 + len(tail)], tail)
        assert (row[3 + len(tail):] == PAD).all()
