"""The visual assistant: the loss counts answer tokens only (against NumPy), and a tiny one learns to answer from
the image and to use the conversation's history, decoding through its key/value cache."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.models.visual_assistant_preprocessor import special_ids
from tfmm.testing import tiny_tasks
from tfmm.text import WordPieceTokenizer, learn_vocabulary

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230)}
WORDS = ["user: assistant: what colour is it? pick a colour. say it again. red green blue"] * 20  # a word seen once is spelt out


def _conversations(rng, count):
    """Solid-colour images. Half the conversations ask the image's colour (one turn); the other half ask for any
    colour, then to say it again: only the history tells that second answer."""
    names = list(COLOURS)
    drawn = rng.integers(len(names), size=count)
    picked = rng.integers(len(names), size=count)
    images = np.stack([np.full((16, 16, 3), COLOURS[names[i]], np.uint8) for i in drawn])
    questions = np.array([["what colour is it?", ""] if n % 2 else ["pick a colour.", "say it again."] for n in range(count)])
    answers = np.array([[names[i], ""] if n % 2 else [names[j], names[j]] for n, (i, j) in enumerate(zip(drawn, picked))])
    return images, questions, answers, [names[i] for i in drawn]


def _tokenizer():
    return WordPieceTokenizer(vocabulary=learn_vocabulary(WORDS, 60))


def test_loss_counts_answer_tokens_only_against_numpy():
    task = tiny_tasks.assistant(_tokenizer())
    images, questions, answers, _ = _conversations(np.random.default_rng(0), 3)
    x, y, weights = task.preprocessor({"images": images, "questions": questions, "answers": answers})
    vocabulary = task.preprocessor.vocabulary
    for row in range(3):  # the weighted targets are exactly the answers and their end tokens
        kept = [vocabulary[t] for t, w in zip(y[row].numpy(), weights[row].numpy()) if w > 0]
        expected = [t for a in answers[row] if a for t in (a, "[SEP]")]
        assert kept == expected, (row, kept)
    logits = np.asarray(task(x)["logits"], np.float64)
    log_p = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    picked = -np.take_along_axis(log_p, y.numpy()[..., None], -1)[..., 0]
    w = weights.numpy()
    assert float(task.compute_loss(x, y, task(x), weights)) == pytest.approx((picked * w).sum() / w.sum(), rel=1e-4)


def test_a_tiny_assistant_answers_from_the_image_and_from_the_history():
    # Gemma's path through the same cache code is checked against one causal pass in test_prefix_language_model
    keras.utils.set_random_seed(0)
    task = tiny_tasks.assistant(_tokenizer())
    images, questions, answers, _ = _conversations(np.random.default_rng(0), 384)
    data = tf.data.Dataset.from_tensor_slices({"images": images, "questions": questions, "answers": answers})
    task.compile(optimizer=keras.optimizers.Adam(3e-3))
    task.fit(data.shuffle(384, seed=0).batch(32).repeat(), steps_per_epoch=60, epochs=5, verbose=0)
    images, _, _, names = _conversations(np.random.default_rng(1), 24)  # fresh images
    first = task.reply(images, [[] for _ in names], ["what colour is it?"] * len(names))
    assert first == names
    # the second turn repeats what the history says was answered, even where that is not the image's colour
    said = [list(COLOURS)[(list(COLOURS).index(n) + 1) % 3] for n in names]
    again = task.reply(images, [[("pick a colour.", s)] for s in said], ["say it again."] * len(names))
    assert again == said


def test_a_long_history_keeps_its_last_whole_turns_that_fit():
    task = tiny_tasks.assistant(_tokenizer(), sequence_length=24, max_reply_length=4)
    history = [("pick a colour.", "red"), ("say it again.", "red"), ("pick a colour.", "blue")]
    prompts, dropped = task.prompt_ids([history, history[2:]], ["say it again."] * 2)
    turn = lambda q, a: task.preprocessor.turn_tokens(tf.constant([q]), None if a is None else tf.constant([a]))[0][0].numpy().tolist()
    # 24 positions − 4 for the reply leave 20: the start token, the question (8 tokens) and one 10-token turn
    assert dropped == [2, 0]
    kept = [[t for t in row if t >= 0] for row in prompts.tolist()]
    assert kept[0] == turn(*history[2]) + turn("say it again.", None) == kept[1]
    # a question alone, and an empty history, give the question's tokens only
    alone, dropped = task.prompt_ids([[]], ["say it again."])
    assert alone.tolist() == [turn("say it again.", None)] and dropped == [0]


def test_a_context_the_language_model_cannot_hold_is_refused():
    with pytest.raises(TfmmError, match="16 image tokens \\+ sequence_length 60 = 76 positions; the language model has 64"):
        tiny_tasks.assistant(_tokenizer(), sequence_length=60)
    with pytest.raises(TfmmError, match="max_reply_length 24 leaves no room for the question in sequence_length 24"):
        tiny_tasks.assistant(_tokenizer(), sequence_length=24, max_reply_length=24)



@pytest.mark.parametrize("family", ["gpt2", "gemma"])
def test_prefilled_decoding_gives_the_replies_of_a_plain_greedy_loop(family):
    """The prompt goes through the cache in one pass (to the shortest prompt) and the rest is forced: the replies
    must be those of greedy decoding by full forward passes without any cache, prompts of different lengths mixed."""
    keras.utils.set_random_seed(3)
    task = tiny_tasks.assistant(_tokenizer(), family=family, sequence_length=40, max_reply_length=6)
    images, _, _, _ = _conversations(np.random.default_rng(2), 3)
    histories = [[], [("pick a colour.", "red")], [("what colour is it?", "blue"), ("say it again.", "blue")]]
    prompt_ids, _ = task.prompt_ids(histories, ["what colour is it?", "say it again.", "pick a colour."])
    got = task.reply_tensors(images, prompt_ids)["token_ids"].numpy()

    start, end, pad = special_ids(task.preprocessor.tokenizer)
    converted = task.preprocessor.convert_images(images)
    for row, ids in enumerate(prompt_ids):
        tokens, reply = [start, *[int(t) for t in ids if t >= 0]], []
        while len(reply) < task.max_reply_length:
            logits = task.backbone({"images": converted[row:row + 1], "token_ids": tf.constant([tokens]),
                                    "padding_mask": tf.ones((1, len(tokens)), tf.int32)})["logits"]
            reply.append(int(np.argmax(logits[0, -1])))
            tokens.append(reply[-1])
            if reply[-1] == end:
                break
        expected = reply + [pad] * (task.max_reply_length - len(reply))
        assert got[row].tolist() == expected, (row, got[row], expected)


def test_reply_batches_by_prompt_length_and_answers_in_the_order_asked():
    """`reply` sorts conversations by prompt length (for the one-pass prefill) and must hand back each answer in place:
    the same replies as asking one conversation at a time, for pixels and for encoded images."""
    keras.utils.set_random_seed(4)
    task = tiny_tasks.assistant(_tokenizer(), sequence_length=40, max_reply_length=3)
    images, _, _, _ = _conversations(np.random.default_rng(5), 5)
    histories = [[("pick a colour.", "red")] * (i % 3) for i in range(5)]
    questions = ["what colour is it?", "say it again.", "pick a colour.", "what colour is it?", "say it again."]
    alone = [task.reply(images[i:i + 1], [histories[i]], [questions[i]])[0] for i in range(5)]
    assert task.reply(images, histories, questions, batch_size=2) == alone
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    assert task.reply(pngs, histories, questions, batch_size=2) == alone


def test_the_region_target_adds_the_cross_entropy_of_each_regions_pixel_shares_against_numpy():
    """Each of the 4×4 regions (4×4 pixels of a 16-pixel image) against the share of its pixels in each class, per
    label channel; pixels of class UNKNOWN (255) add nothing; the term is added only when the target brings maps."""
    from tfmm.models.visual_assistant import region_loss

    classes = (3, 5)
    task = tiny_tasks.assistant(region_classes=classes, region_weight=0.4)
    images, questions, answers, _ = _conversations(np.random.default_rng(0), 2)
    rng = np.random.default_rng(1)
    labels = np.stack([rng.integers(0, 3, (2, 16, 16)), rng.integers(0, 5, (2, 16, 16))], axis=-1)
    labels[0, :5, :7, 1] = 255
    x, y, weights = task.preprocessor({"images": images, "questions": questions, "answers": answers},
                                      {"labels": labels})
    np.testing.assert_array_equal(y["labels"], labels)
    out = task(x)
    logits = np.asarray(out["region_logits"], np.float64)
    assert logits.shape == (2, 16, 8)
    expected = np.zeros(2)
    for b in range(2):
        for region in range(16):
            row, column = divmod(region, 4)
            cell = labels[b, 4 * row:4 * row + 4, 4 * column:4 * column + 4]
            start = 0
            for channel, count in enumerate(classes):
                z = logits[b, region, start:start + count]
                log_p = z - np.log(np.exp(z).sum())
                shares = np.array([(cell[..., channel] == k).mean() for k in range(count)])
                expected[b] -= (shares * log_p).sum() / (16 * len(classes))
                start += count
    np.testing.assert_allclose(region_loss(out["region_logits"], tf.constant(labels), classes), expected, rtol=1e-5)
    without = float(task.compute_loss(x, y["token_ids"], out, weights))
    with_regions = float(task.compute_loss(x, y, out, weights))
    assert with_regions == pytest.approx(without + 0.4 * expected.mean(), rel=1e-4)
    with pytest.raises(TfmmError, match="region_weight 0.4 needs a backbone with region_classes"):
        tiny_tasks.assistant(region_weight=0.4)


def test_merged_regions_put_each_block_of_neighbours_side_by_side_in_one_token():
    """merge_regions 2 on an 8×8 grid: 16 tokens, token (i, j) the features of regions (2i..2i+1, 2j..2j+1) in
    row-major order (NumPy's reshape of the grid), and the config round-trips."""
    import keras_hub

    from tfmm.encoders.cnn_image_encoder import CNNImageEncoder
    from tfmm.models.visual_assistant_backbone import VisualAssistantBackbone

    encoder = CNNImageEncoder(32, filters=[8, 16, 24], final_stride=1, normalization="batch")
    language_model = keras_hub.models.GPT2Backbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=16,
                                                   intermediate_dim=32, max_sequence_length=64)
    backbone = VisualAssistantBackbone(encoder, language_model, merge_regions=2)
    assert backbone.num_image_tokens == 16
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    grid = encoder(images)["sequence_output"].numpy().reshape(2, 8, 8, 24)
    merged = keras.Sequential(backbone.projector.layers[:3])(encoder(images)["sequence_output"]).numpy()
    for i, j in [(0, 0), (1, 2), (3, 3)]:
        expected = np.concatenate([grid[:, 2 * i + a, 2 * j + b] for a in (0, 1) for b in (0, 1)], axis=-1)
        np.testing.assert_array_equal(merged[:, 4 * i + j], expected)
    again = VisualAssistantBackbone.from_config(backbone.get_config())
    again.set_weights(backbone.get_weights())
    np.testing.assert_allclose(again.image_tokens(images), backbone.image_tokens(images), atol=1e-6)
    with pytest.raises(ValueError, match="merge_regions 3 needs a square grid"):
        VisualAssistantBackbone(encoder, language_model, merge_regions=3)


def test_grid_positions_add_one_row_and_one_column_vector_to_each_image_token():
    """image_positions "grid" (with merged regions: the merged grid): token (i, j) gains row i's vector plus column
    j's (NumPy's sum), the same column vector in every row; the config round-trips; a wrong value is refused."""
    import keras_hub

    from tfmm.encoders.cnn_image_encoder import CNNImageEncoder
    from tfmm.models.visual_assistant_backbone import VisualAssistantBackbone

    encoder = CNNImageEncoder(32, filters=[8, 16, 24], final_stride=1, normalization="batch")
    language_model = keras_hub.models.GPT2Backbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=16,
                                                   intermediate_dim=32, max_sequence_length=64)
    backbone = VisualAssistantBackbone(encoder, language_model, merge_regions=2, image_positions="grid")
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    positions = backbone.projector.get_layer("grid_positions")
    rows, columns = positions.rows.numpy(), positions.columns.numpy()
    assert rows.shape == columns.shape == (4, 16)
    before = keras.Sequential(backbone.projector.layers[:-1])(encoder(images)["sequence_output"]).numpy()
    expected = before + (rows[:, None, :] + columns[None, :, :]).reshape(16, 16)
    np.testing.assert_allclose(backbone.image_tokens(images), expected, atol=1e-6)
    again = VisualAssistantBackbone.from_config(backbone.get_config())
    again.set_weights(backbone.get_weights())
    np.testing.assert_allclose(again.image_tokens(images), backbone.image_tokens(images), atol=1e-6)
    with pytest.raises(ValueError, match="image_positions must be 'none' or 'grid', got 'sine'"):
        VisualAssistantBackbone(encoder, language_model, image_positions="sine")
