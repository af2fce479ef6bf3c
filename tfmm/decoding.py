"""Decoding loops for autoregressive models in TensorFlow graph ops: greedy, sampling, beam search.

A model supplies `step(token_ids (N,), state, index) -> (logits (N, V), state)`: the logits of the
token after `token_ids`, which sits at position `index`; `state` is a nest of tensors with the batch
first (a GRU's hidden state, a Transformer's key/value caches, the image regions). The loops run in
`tf.while_loop`, so the same code decodes in Keras (eagerly or in a `tf.function`) and inside a
SavedModel signature that TF Serving runs, and every loop stops at `max_length`: a request never hangs.

Why not keras-hub's samplers: their k, p, temperature and beam count are fixed when the sampler is
built and they draw from a seed-generator variable, while a served signature takes them (and a
per-request seed) as inputs; keras-hub's `BeamSampler` also has no length penalty.
"""

import tensorflow as tf

NEG_INF = -1e9  # finite: -inf - -inf would give NaN in the score arithmetic


def _as_int(value):
    return tf.cast(tf.convert_to_tensor(value), tf.int32)


def filter_logits(logits, top_k=0, top_p=1.0):
    """Keeps the `top_k` most likely tokens (0 = all) and the smallest set whose probability reaches
    `top_p` (1 = all); the rest get NEG_INF. Both may be tensors."""
    vocabulary = tf.shape(logits)[-1]
    top_k = _as_int(top_k)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary), vocabulary)
    kth = tf.math.top_k(logits, k=k).values[:, -1:]
    logits = tf.where(logits < kth, NEG_INF, logits)
    sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
    before = tf.math.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)  # probability mass ahead of each
    kept = tf.where(before < tf.cast(top_p, logits.dtype), sorted_logits, tf.reduce_max(logits, -1, keepdims=True))
    threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
    return tf.where(logits < threshold, NEG_INF, logits)


def sample(step, state, batch_size, start_id, end_id, max_length, temperature=0.0, top_k=0, top_p=1.0, seed=(0, 0),
           pad_id=0, forced_ids=None):
    """Greedy decoding (temperature ≤ 0) or sampling from the top-k / top-p filtered distribution. `start_id`: the
    first step's input token, a scalar or one per row.

    `forced_ids` (batch, max_length), -1 where free, fixes the tokens it gives (the rest are sampled
    after them: editing a region of an image's tokens, or a prompt to continue). A forced end token does not
    end the sequence: a conversation's prompt holds the ends of its earlier answers.

    Returns `token_ids` (batch, max_length): the generated tokens, the end token included, then `pad_id`;
    `log_probability` (batch,): the model's log-probability of them; `length` (batch,): tokens before the end.
    """
    max_length = _as_int(max_length)
    if forced_ids is not None:
        forced_ids = tf.cast(forced_ids, tf.int32)
    temperature = tf.cast(temperature, tf.float32)
    seed = tf.cast(seed, tf.int64)

    def body(index, token, state, token_ids, log_probability, finished):
        logits, state = step(token, state, index)
        logits = tf.cast(logits, tf.float32)
        log_softmax = tf.nn.log_softmax(logits)
        filtered = filter_logits(logits / tf.maximum(temperature, 1e-6), top_k, top_p)
        step_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))
        drawn = tf.random.stateless_categorical(filtered, 1, seed=step_seed, dtype=tf.int32)[:, 0]
        chosen = tf.where(temperature > 0, drawn, tf.argmax(logits, -1, output_type=tf.int32))
        chosen = tf.ensure_shape(chosen, token.shape)  # a step may lose the static batch size the loop keeps
        drawn_here = tf.ones_like(finished)
        if forced_ids is not None:
            forced = tf.gather(forced_ids, index, axis=1)
            chosen = tf.where(forced >= 0, forced, chosen)
            drawn_here = forced < 0
        chosen = tf.where(finished, pad_id, chosen)
        gained = tf.ensure_shape(tf.gather(log_softmax, chosen, batch_dims=1), token.shape)
        log_probability += tf.where(finished, 0.0, gained)
        token_ids = tf.where(tf.range(max_length)[None] == index, chosen[:, None], token_ids)
        return index + 1, chosen, state, token_ids, log_probability, finished | ((chosen == end_id) & drawn_here)

    def running(index, token, state, token_ids, log_probability, finished):
        return (index < max_length) & ~tf.reduce_all(finished)

    start = tf.broadcast_to(tf.cast(start_id, tf.int32), [batch_size])  # one start token, or one per row
    initial = (tf.constant(0), start, state, tf.fill([batch_size, max_length], tf.cast(pad_id, tf.int32)),
               tf.zeros([batch_size]), tf.zeros([batch_size], tf.bool))
    _, _, _, token_ids, log_probability, _ = tf.while_loop(running, body, initial)
    return {"token_ids": token_ids, "log_probability": log_probability, "length": _length(token_ids, end_id, pad_id)}


def _length(token_ids, end_id, pad_id):
    """Tokens before the end token (or before the padding of a sequence cut at max_length)."""
    stops = (token_ids == end_id) | (token_ids == pad_id)
    return tf.reduce_sum(tf.cast(tf.math.cumsum(tf.cast(stops, tf.int32), axis=-1) == 0, tf.int32), axis=-1)


def length_normalizer(length, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha; alpha 0 ranks by log-probability alone."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


def beam_search(step, state, batch_size, start_id, end_id, max_length, beam_width, length_penalty=0.0, pad_id=0):
    """Beam search, vectorised over the batch and the beams (all batch × beam rows go through one `step`).

    Beams are ranked by log-probability / ((5 + generated tokens) / 6) ** length_penalty; a beam that
    has produced `end_id` is finished and keeps its score. `beam_width` may be a tensor.
    Returns `token_ids` (batch, beams, max_length), `scores` and `log_probability` (batch, beams),
    best beam first, and `length` (batch, beams).
    """
    beams = _as_int(beam_width)
    max_length = _as_int(max_length)
    rows = batch_size * beams
    beam_shape = tf.TensorShape([tf.get_static_value(batch_size), tf.get_static_value(beams)])
    state = tf.nest.map_structure(lambda s: tf.repeat(s, beams, axis=0), state)
    # Only the first beam is live at the start, so the first step does not pick one token K times.
    log_probability = tf.tile(tf.concat([[0.0], tf.fill([beams - 1], NEG_INF)], 0)[None], [batch_size, 1])

    def body(index, token, state, token_ids, log_probability, finished, length):
        logits, state = step(token, state, index)
        vocabulary = tf.shape(logits)[-1]
        step_log_probability = tf.reshape(tf.nn.log_softmax(tf.cast(logits, tf.float32)), [batch_size, beams, -1])
        # A finished beam has one continuation, padding, which costs nothing.
        only_pad = tf.where(tf.range(vocabulary) == pad_id, 0.0, NEG_INF)
        step_log_probability = tf.where(finished[..., None], only_pad, step_log_probability)
        total = log_probability[..., None] + step_log_probability
        new_length = length + tf.cast(~finished, tf.int32)
        score = total / length_normalizer(new_length, length_penalty)[..., None]
        best = tf.math.top_k(tf.reshape(score, [batch_size, -1]), k=beams)
        parent, chosen = best.indices // vocabulary, best.indices % vocabulary
        rows_from = tf.reshape(parent + tf.range(batch_size)[:, None] * beams, [-1])
        state = tf.nest.map_structure(lambda s: tf.gather(s, rows_from), state)
        token_ids = tf.gather(token_ids, parent, batch_dims=1)
        token_ids = tf.where(tf.range(max_length)[None, None] == index, chosen[..., None], token_ids)
        log_probability = tf.gather(tf.reshape(total, [batch_size, -1]), best.indices, batch_dims=1)
        length = tf.gather(new_length, parent, batch_dims=1)
        finished = tf.gather(finished, parent, batch_dims=1) | (chosen == end_id)
        # Gathers lose static sizes that the loop needs unchanged (a constant beam width, say).
        token_ids = tf.ensure_shape(token_ids, beam_shape + [tf.get_static_value(max_length)])
        log_probability, finished, length = (tf.ensure_shape(t, beam_shape) for t in (log_probability, finished, length))
        return index + 1, tf.reshape(chosen, [-1]), state, token_ids, log_probability, finished, length

    def running(index, token, state, token_ids, log_probability, finished, length):
        return (index < max_length) & ~tf.reduce_all(finished)

    initial = (tf.constant(0), tf.fill([rows], tf.cast(start_id, tf.int32)), state,
               tf.fill([batch_size, beams, max_length], tf.cast(pad_id, tf.int32)), log_probability,
               tf.zeros([batch_size, beams], tf.bool), tf.zeros([batch_size, beams], tf.int32))
    _, _, _, token_ids, log_probability, _, length = tf.while_loop(running, body, initial)
    scores = log_probability / length_normalizer(length, length_penalty)
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    token_ids = tf.gather(token_ids, order, batch_dims=1)
    return {"token_ids": token_ids, "scores": tf.gather(scores, order, batch_dims=1),
            "log_probability": tf.gather(log_probability, order, batch_dims=1),
            "length": _length(token_ids, end_id, pad_id)}
