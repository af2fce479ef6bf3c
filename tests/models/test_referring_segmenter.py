"""The referring segmenter: its two U-Nets listen to the text, the loss against NumPy, masks brought to the
model's size as the images are, and a tiny model learns to pick the object its words name (the checks every task
passes are in test_every_task.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmm.models import ReferringSegmenter, ReferringSegmenterBackbone
from tfmm.models.referring_segmenter import class_map_loss, dice_loss, presence_loss
from tfmm.testing import tiny_tasks
from tfmm.testing.tiny_tasks import IMAGE_SIZE

TEXTS = ["a small red circle left of a large blue star", "is there a green square"]


def _inputs(task, count=2):
    x = {"images": tiny_tasks.images(count), "text": tf.constant((TEXTS * count)[:count])}
    return task.preprocessor(x)


@pytest.mark.parametrize("conditioning", ["film", "cross_attention"])
def test_masks_have_the_images_size_and_the_words_matter(conditioning):
    task = tiny_tasks.segmenter(conditioning)
    if conditioning == "film":  # FiLM starts as the identity; give it something to say
        for layer in task.backbone.layers:
            if layer.name.endswith("_film"):
                for weight in layer.weights:
                    weight.assign(np.random.default_rng(0).normal(0, 0.5, weight.shape))
    images = np.repeat(tiny_tasks.images(1), 2, axis=0)
    details = task.segment_details(images, TEXTS)
    assert details["masks"].shape == (2, IMAGE_SIZE, IMAGE_SIZE) and details["masks"].dtype == np.uint8
    assert not np.allclose(details["probabilities"][0], details["probabilities"][1])  # same image, other words
    marked = details["masks"].astype(bool)
    for i in range(2):
        expected = details["probabilities"][i][marked[i]].mean() if marked[i].any() else 0.0
        assert details["score"][i] == pytest.approx(expected, abs=1e-5)


def test_film_starts_as_the_identity():
    task = tiny_tasks.segmenter("film")
    images = np.repeat(tiny_tasks.images(1), 2, axis=0)
    probabilities = task.segment_details(images, TEXTS)["probabilities"]
    np.testing.assert_allclose(probabilities[0], probabilities[1], atol=1e-6)


@pytest.mark.parametrize("levels, attending", [(1, ["bottleneck_words"]), (2, ["skip0_words", "bottleneck_words"])])
def test_a_film_u_net_attends_to_the_words_at_its_coarsest_levels(levels, attending):
    plain = tiny_tasks.segmenter("film")
    backbone = ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16), num_heads=2,
                                          word_attention_levels=levels)
    assert sorted(layer.name for layer in backbone.layers if layer.name.endswith("_words")) == sorted(attending)
    # FiLM starts as the identity, the attention does not: the words already matter
    task = ReferringSegmenter(backbone, plain.preprocessor)
    images = np.repeat(tiny_tasks.images(1), 2, axis=0)
    probabilities = task.segment_details(images, TEXTS)["probabilities"]
    assert not np.allclose(probabilities[0], probabilities[1], atol=1e-6)
    assert ReferringSegmenterBackbone.from_config(backbone.get_config()).word_attention_levels == levels


def _bilinear_upsample(x, factor):
    """NumPy: (B, h, w) → (B, h·f, w·f), half-pixel centres, edges clamped (as `UpSampling2D(bilinear)`)."""
    def weights(size):
        at = np.clip((np.arange(size * factor) + 0.5) / factor - 0.5, 0, size - 1)
        low = np.floor(at).astype(int)
        high, t = np.minimum(low + 1, size - 1), at - low
        matrix = np.zeros((size * factor, size))
        np.add.at(matrix, (np.arange(size * factor), low), 1 - t)
        np.add.at(matrix, (np.arange(size * factor), high), t)
        return matrix
    rows, cols = weights(x.shape[1]), weights(x.shape[2])
    return np.einsum("ih,bhw,jw->bij", rows, x, cols)


def test_coarse_logits_add_the_first_decoder_levels_upsampled_guess():
    plain = tiny_tasks.segmenter("film")
    backbone = ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16, 32), num_heads=2,
                                          coarse_logits=True)
    parts = keras.Model(backbone.input, [backbone.get_layer("logits").output, backbone.get_layer("coarse_logits").output,
                                         backbone.output["logits"]])
    fine, coarse, total = (np.asarray(t, np.float64) for t in parts(_inputs(plain, 2)))
    assert coarse.shape == (2, IMAGE_SIZE // 2, IMAGE_SIZE // 2, 1)  # one halving above the bottleneck
    assert np.abs(coarse).max() > 1e-3
    np.testing.assert_allclose(total, fine[..., 0] + _bilinear_upsample(coarse[..., 0], 2), atol=1e-5)
    assert ReferringSegmenterBackbone.from_config(backbone.get_config()).coarse_logits
    assert "coarse_logits" not in [layer.name for layer in plain.backbone.layers]  # off by default


def test_bottleneck_transformer_runs_on_the_flattened_map_with_its_positions():
    """`bottleneck_layers`: the bottleneck map, row-major, plus its position embeddings, through keras-hub's
    Transformer encoder block (the oracle: the same block called on NumPy's flattening), back to a map."""
    plain = tiny_tasks.segmenter("film")
    backbone = ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16, 32), num_heads=2,
                                          bottleneck_layers=1)
    parts = keras.Model(backbone.input, [backbone.get_layer("bottleneck_film").output,
                                         backbone.get_layer("bottleneck_map").output])
    before, after = (np.asarray(t) for t in parts(_inputs(plain, 2)))
    batch, height, width, channels = before.shape
    assert (height, width) == (IMAGE_SIZE // 4, IMAGE_SIZE // 4)
    positions = backbone.get_layer("bottleneck_positions").position_embeddings.numpy()
    assert np.abs(positions).max() > 0  # learnt, and not zero at the start
    tokens = before.reshape(batch, height * width, channels) + positions
    expected = np.asarray(backbone.get_layer("bottleneck_transformer0")(tokens)).reshape(before.shape)
    np.testing.assert_allclose(after, expected, atol=1e-5)
    assert ReferringSegmenterBackbone.from_config(backbone.get_config()).bottleneck_layers == 1
    assert "bottleneck_map" not in [layer.name for layer in plain.backbone.layers]  # off unless asked


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_attribute_maps_feed_each_decoder_level_both_heads_probabilities_without_their_gradient(tmp_path):
    """`attribute_maps`: the colour head reads the full-resolution first level; each decoder level's features are
    joined by the shape probabilities (bilinearly upsampled from the first decoder level) and the colour ones
    (averaged down), both NumPy's softmax of the heads' logits (times a per-channel scale, 1 at the start); the
    mask's loss does not reach the heads."""
    plain = tiny_tasks.segmenter("film")
    backbone = ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16, 32), num_heads=2,
                                          shape_classes=3, colour_classes=4, attribute_maps=True)
    names = ["shape_logits", "colour_logits", "decode1_act1", "attributes1", "decode0_act1", "attributes0"]
    parts = keras.Model(backbone.input, [backbone.get_layer(name).output for name in names])
    inputs = _inputs(plain, 2)
    shape, colour, features1, joined1, features0, joined0 = (np.asarray(t, np.float64) for t in parts(inputs))
    assert shape.shape == (2, IMAGE_SIZE // 2, IMAGE_SIZE // 2, 3) and colour.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 4)
    colour_pooled = _softmax(colour).reshape(2, IMAGE_SIZE // 2, 2, IMAGE_SIZE // 2, 2, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(joined1, np.concatenate([features1, _softmax(shape), colour_pooled], -1), atol=1e-5)
    shape_up = np.stack([_bilinear_upsample(_softmax(shape)[..., k], 2) for k in range(3)], -1)
    np.testing.assert_allclose(joined0, np.concatenate([features0, shape_up, _softmax(colour)], -1), atol=1e-5)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(backbone(inputs)["logits"])
    gradients = dict(zip([v.path for v in backbone.trainable_variables], tape.gradient(total, backbone.trainable_variables)))
    assert gradients["shape_logits/kernel"] is None and gradients["colour_logits/kernel"] is None
    assert np.any(gradients["logits/kernel"]) and np.any(gradients["down0_conv0/kernel"])
    assert ReferringSegmenterBackbone.from_config(backbone.get_config()).attribute_maps
    backbone.save(tmp_path / "backbone.keras")  # the detached softmax is a registered layer: it loads back
    loaded = keras.saving.load_model(tmp_path / "backbone.keras")
    np.testing.assert_allclose(loaded(inputs)["logits"], backbone(inputs)["logits"], atol=1e-6)
    with pytest.raises(ValueError, match="attribute_maps needs shape_classes, colour_classes"):
        ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16), shape_classes=3,
                                   attribute_maps=True)


def test_attribute_words_join_where_each_named_attribute_fits_and_where_both_do(tmp_path):
    """`attribute_words`: beside the class maps, each decoder level gets the colour fit (from the full-resolution
    colour probabilities, averaged down), the shape fit (from the first decoder level's, upsampled) and their
    product, each as `AttributeFit` gives it from the words' ids; the logits add the sentence's gain × (2 fit − 1)."""
    plain = tiny_tasks.segmenter("film")
    inputs = _inputs(plain, 2)
    first, second = (int(i) for i in np.asarray(inputs["token_ids"])[0, 1:3])  # two words of the first expression
    words = {"shape": [[], [first], []], "colour": [[], [], [second], []]}
    backbone = ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16, 32), num_heads=2,
                                          shape_classes=3, colour_classes=4, attribute_maps=True, attribute_words=words)
    gain = backbone.get_layer("fit_gain")
    gain.set_weights([np.full_like(w, 0.05) for w in gain.get_weights()])  # 0 at the start; a gain to check
    names = ["shape_probabilities", "colour_probabilities", "shape_fit", "colour_fit", "decode1_act1", "attributes1",
             "attributes0", "logits", "fit_gain", "mask_logits"]
    parts = keras.Model(backbone.input, [backbone.get_layer(name).output for name in names])
    (shape_p, colour_p, shape_fit, colour_fit, features1, joined1, joined0, logits_before, sentence_gain,
     logits) = (np.asarray(t, np.float64) for t in parts(inputs))
    expected_shape_fit = np.where(np.isin(np.asarray(inputs["token_ids"]), [first]).any(1)[:, None, None],
                                  shape_p[..., 1], 1.0)
    np.testing.assert_allclose(shape_fit[..., 0], expected_shape_fit, atol=1e-5)
    expected_colour_fit = np.where(np.isin(np.asarray(inputs["token_ids"]), [second]).any(1)[:, None, None],
                                   colour_p[..., 2], 1.0)
    np.testing.assert_allclose(colour_fit[..., 0], expected_colour_fit, atol=1e-5)
    colour_pooled = colour_fit.reshape(2, IMAGE_SIZE // 2, 2, IMAGE_SIZE // 2, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(joined1[..., -3:], np.concatenate([shape_fit, colour_pooled, shape_fit * colour_pooled], -1),
                               atol=1e-5)
    np.testing.assert_allclose(joined1[..., :features1.shape[-1]], features1, atol=1e-6)
    assert joined1.shape[-1] == features1.shape[-1] + 3 + 4 + 3  # features, shape and colour classes, three fits
    shape_up = _bilinear_upsample(shape_fit[..., 0], 2)[..., None]
    both = shape_up * colour_fit
    np.testing.assert_allclose(joined0[..., -3:], np.concatenate([shape_up, colour_fit, both], -1), atol=1e-5)
    np.testing.assert_allclose(logits, logits_before[..., 0] + sentence_gain[:, :, None] * (2 * both[..., 0] - 1), atol=1e-5)
    assert np.ptp(both) > 0.1  # the fits are not constant: the check above sees them
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(backbone(inputs)["logits"])
    gradients = dict(zip([v.path for v in backbone.trainable_variables], tape.gradient(total, backbone.trainable_variables)))
    assert np.any(gradients["fit_gain/kernel"])
    assert gradients["colour_logits/kernel"] is None  # the fits read the detached probabilities
    backbone.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras")
    assert loaded.attribute_words == words
    np.testing.assert_allclose(loaded(inputs)["logits"], backbone(inputs)["logits"], atol=1e-6)
    with pytest.raises(ValueError, match="attribute_words feed fits of the attribute maps"):
        ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16), shape_classes=3,
                                   colour_classes=4, attribute_words=words)
    with pytest.raises(ValueError, match="attribute_words needs ids for each of 3 shape and 4 colour classes"):
        ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16), shape_classes=3,
                                   colour_classes=4, attribute_maps=True, attribute_words={"shape": [[]], "colour": []})


def test_loss_is_cross_entropy_plus_dice_plus_presence_against_numpy():
    task = tiny_tasks.segmenter("film")
    task.presence_weight, task.threshold = 0.7, 0.6
    x = _inputs(task, 3)
    targets = np.zeros((3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    targets[0, 2:9, 3:7] = 1
    targets[1, :, :5] = 1  # 2: names nothing
    logits = np.asarray(task(x)["logits"], np.float64)
    p = 1 / (1 + np.exp(-logits))
    cross_entropy = -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean(axis=(1, 2))
    dice = 1 - (2 * (p * targets).sum((1, 2)) + 1) / (p.sum((1, 2)) + targets.sum((1, 2)) + 1)
    # presence: the most probable pixel against "names something", measured from the threshold (0.6 ↔ logit 0.405)
    named = np.array([1.0, 1.0, 0.0])
    q = 1 / (1 + np.exp(-(logits.max(axis=(1, 2)) - np.log(0.6 / 0.4))))
    presence = -(named * np.log(q) + (1 - named) * np.log(1 - q))
    got = float(task.compute_loss(x, tf.constant(targets), task(x)))
    assert got == pytest.approx((cross_entropy + dice + 0.7 * presence).mean(), rel=1e-4)
    np.testing.assert_allclose(dice_loss(logits, targets), dice, rtol=1e-5)
    np.testing.assert_allclose(presence_loss(logits, targets, 0.6), presence, rtol=1e-5)


def test_the_shape_and_colour_targets_add_their_cross_entropy_at_the_first_decoder_level_against_numpy():
    plain = tiny_tasks.segmenter("film")
    backbone = ReferringSegmenterBackbone(plain.backbone.text_encoder, IMAGE_SIZE, filters=(8, 16, 32), num_heads=2,
                                          shape_classes=6, colour_classes=7)
    task = ReferringSegmenter(backbone, plain.preprocessor, presence_weight=0.0, shape_weight=0.3, colour_weight=0.2)
    x = _inputs(task, 2)
    rng = np.random.default_rng(1)
    maps = {"shape": rng.integers(0, 6, (2, IMAGE_SIZE, IMAGE_SIZE)), "colour": rng.integers(0, 7, (2, IMAGE_SIZE, IMAGE_SIZE))}
    masks = (maps["shape"] == 2).astype(np.float32)
    out = task(x)
    expected = {}
    for attribute, classes in (("shape", 6), ("colour", 7)):
        logits = np.asarray(out[f"{attribute}_logits"], np.float64)
        assert logits.shape == (2, IMAGE_SIZE // 2, IMAGE_SIZE // 2, classes)
        # nearest sampling at half-pixel centres: output position i reads pixel floor((i + 0.5) · 2) = 2i + 1
        labels = maps[attribute][:, 1::2, 1::2]
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected[attribute] = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0].mean(axis=(1, 2))
        np.testing.assert_allclose(class_map_loss(logits, maps[attribute]), expected[attribute], rtol=1e-5)
    without = float(task.compute_loss(x, tf.constant(masks), out))  # a plain mask target: no map terms
    target = {"mask": tf.constant(masks), **{f"{a}_map": tf.constant(m) for a, m in maps.items()}}
    both = float(task.compute_loss(x, target, out))
    assert both == pytest.approx(without + 0.3 * expected["shape"].mean() + 0.2 * expected["colour"].mean(), rel=1e-4)
    del target["colour_map"]  # a map left out adds nothing
    assert float(task.compute_loss(x, target, out)) == pytest.approx(without + 0.3 * expected["shape"].mean(), rel=1e-4)
    with pytest.raises(ValueError, match="shape_weight 0.3 needs a backbone with shape_classes"):
        ReferringSegmenter(plain.backbone, plain.preprocessor, shape_weight=0.3)
    with pytest.raises(ValueError, match="colour_weight 0.2 needs a backbone with colour_classes"):
        ReferringSegmenter(plain.backbone, plain.preprocessor, colour_weight=0.2)


def test_masks_are_resampled_like_the_images():
    task = tiny_tasks.segmenter()
    mask = np.zeros((1, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE), np.uint8)
    mask[0, 3:20, 5:11] = 255
    got = task.preprocessor.convert_masks(mask).numpy()
    blocks = (mask[0] > 0).reshape(IMAGE_SIZE, 2, IMAGE_SIZE, 2).mean(axis=(1, 3))
    np.testing.assert_array_equal(got[0], (blocks > 0.5).astype(np.float32))


def _two_squares(rng, count):
    """Images with a red and a blue square at random places; the text names one of them."""
    images = np.zeros((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    masks = np.zeros((count, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    texts = []
    for i in range(count):
        corners = rng.permutation([(1, 1), (1, 9), (9, 1), (9, 9)])[:2]
        for (y, x), colour in zip(corners, [(230, 30, 30), (30, 30, 230)]):
            images[i, y:y + 6, x:x + 6] = colour
        named = int(rng.integers(2))
        texts.append(["the red square", "the blue square"][named])
        y, x = corners[named]
        masks[i, y:y + 6, x:x + 6] = 1
    return images, masks, texts


def test_a_tiny_segmenter_learns_to_mark_what_its_words_name():
    keras.utils.set_random_seed(0)  # the initial weights, whatever ran before in this process
    tokenizer = tiny_tasks.WordPieceTokenizer(vocabulary=tiny_tasks.learn_vocabulary(["the red square", "the blue square"], 40))
    task = tiny_tasks.segmenter("cross_attention", tokenizer)
    images, masks, texts = _two_squares(np.random.default_rng(0), 256)
    data = tf.data.Dataset.from_tensor_slices(({"images": images, "text": texts}, masks)).shuffle(256, seed=0)
    data = data.batch(32).repeat()
    task.compile(optimizer=keras.optimizers.Adam(3e-3))
    task.fit(data, steps_per_epoch=40, epochs=3, verbose=0)
    images, masks, texts = _two_squares(np.random.default_rng(1), 64)  # fresh scenes
    predicted = task.segment(images, texts).astype(bool)
    ious = (predicted & masks.astype(bool)).sum((1, 2)) / (predicted | masks.astype(bool)).sum((1, 2))
    assert ious.mean() > 0.8, ious.mean()
