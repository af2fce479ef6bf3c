import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfmm.encoders import (
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    ViTImageEncoder,
    build_image_encoder,
    build_text_encoder,
    image_encoder_options,
    preset_vocabulary,
    text_encoder_options,
)
from tfmm.errors import TfmmError
from tfmm.testing import assert_keras_round_trip

IMAGES = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
TOKENS = {"token_ids": np.array([[1, 5, 6, 2, 0, 0, 0, 0]] * 2, "int32"), "padding_mask": np.array([[1, 1, 1, 1, 0, 0, 0, 0]] * 2, "int32")}


def image(name, size="tiny", image_size=32, **options):
    return build_image_encoder(image_encoder_options(name, size=size, **options), image_size)


def text(name, vocabulary_size, length, size="tiny", **options):
    return build_text_encoder(text_encoder_options(name, size=size, **options), vocabulary_size, length)


@pytest.mark.parametrize("name", IMAGE_ENCODERS.names())
def test_image_encoders(name):
    encoder = image(name)
    out = encoder(IMAGES)
    assert out["pooled_output"].shape == (2, encoder.output_dim)
    assert out["sequence_output"].shape[0] == 2 and out["sequence_output"].shape[2] == encoder.output_dim
    assert out["sequence_output"].shape[1] > 1  # a grid of region vectors, not only the pooled one
    assert_keras_round_trip(encoder, IMAGES, atol=1e-5)


def test_a_final_stride_of_one_keeps_the_grid_twice_as_fine():
    halved, kept = image("cnn", size="small"), image("cnn", size="small", final_stride=1)
    assert halved(IMAGES)["sequence_output"].shape == (2, 4, 256)  # 32 px / 2⁴
    assert kept(IMAGES)["sequence_output"].shape == (2, 16, 256)
    assert kept.count_params() == halved.count_params()  # the same layers, one stride fewer
    assert_keras_round_trip(kept, IMAGES, atol=1e-5)


@pytest.mark.parametrize("name", TEXT_ENCODERS.names())
def test_text_encoders_ignore_padding(name):
    encoder = text(name, 20, 8)
    out = encoder(TOKENS)
    assert out["pooled_output"].shape == (2, encoder.output_dim)
    assert out["sequence_output"].shape == (2, 8, encoder.output_dim)
    changed = {"token_ids": TOKENS["token_ids"].copy(), "padding_mask": TOKENS["padding_mask"]}
    changed["token_ids"][:, 6] = 9  # a token under the padding mask
    if name != "gru":  # a forward-backward GRU reads every position; its pooling still masks
        np.testing.assert_allclose(encoder(changed)["pooled_output"], out["pooled_output"], atol=1e-5)
    assert_keras_round_trip(encoder, TOKENS, atol=1e-5)


def test_unknown_names_and_sizes_list_the_valid_ones():
    with pytest.raises(TfmmError, match="unknown image encoder 'vgg'.*valid: cnn, resnet, vit"):
        image("vgg")
    with pytest.raises(TfmmError, match="unknown size 'huge'.*tiny, small, base"):
        text("gru", 10, 8, size="huge")


def test_tfmm_encoder_preset_round_trip(tmp_path):
    encoder = image("cnn")
    encoder.save_to_preset(str(tmp_path / "preset"))
    loaded = image("cnn", "small", weights=str(tmp_path / "preset"))  # the preset decides the size
    for a, b in zip(encoder.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_hub_vit_preset_becomes_a_tfmm_vit_with_the_same_outputs(tmp_path):
    vit = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)
    rng = np.random.default_rng(0)
    for weight in vit.weights:  # biases and norms off their zero / one init, so a misplaced one shows
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    vit.save_to_preset(str(tmp_path / "vit"))
    encoder = image("vit", weights=str(tmp_path / "vit"))
    reference = keras.ops.convert_to_numpy(vit(IMAGES * 2 - 1))  # the oracle: keras-hub's own forward pass
    outputs = encoder(IMAGES)
    np.testing.assert_allclose(outputs["pooled_output"], reference[:, 0], atol=1e-4)
    np.testing.assert_allclose(outputs["sequence_output"], reference[:, 1:], atol=1e-4)
    without_class_token = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
                                                       hidden_dim=16, mlp_dim=32, use_class_token=False)
    with pytest.raises(TfmmError, match="use_class_token.*cannot be converted"):
        ViTImageEncoder.from_keras_hub(without_class_token)
    with pytest.raises(TfmmError, match="takes 32×32 images but data.image_size is 64"):
        image("vit", image_size=64, weights=str(tmp_path / "vit"))


def test_bert_preset_brings_its_vocabulary(tmp_path):
    vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "red", "circle"]
    bert = keras_hub.models.BertBackbone(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)
    bert.save_to_preset(str(tmp_path / "bert"))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(str(tmp_path / "bert"))
    encoder = text("bert", 8, 8, weights=str(tmp_path / "bert"))
    for a, b in zip(bert.get_weights(), encoder.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert preset_vocabulary(tmp_path / "bert") == vocabulary


def test_weights_h5_and_bad_paths(tmp_path):
    encoder = text("transformer", 20, 8)
    encoder.save_weights(str(tmp_path / "t.weights.h5"))
    loaded = text("transformer", 20, 8, weights=str(tmp_path / "t.weights.h5"))
    np.testing.assert_allclose(loaded(TOKENS)["pooled_output"], encoder(TOKENS)["pooled_output"], atol=1e-6)
    with pytest.raises(TfmmError, match="do not fit"):
        text("transformer", 30, 8, weights=str(tmp_path / "t.weights.h5"))
    with pytest.raises(TfmmError, match="model.text_encoder.weights: pretrained weights not found"):
        text("gru", 20, 8, weights=str(tmp_path / "none"))


def test_freezing():
    frozen = image("cnn", trainable="frozen")
    assert not frozen.trainable_weights
    top1 = image("cnn", trainable="top-1")
    full = image("cnn", trainable="full")
    assert 0 < len(top1.trainable_weights) < len(full.trainable_weights)


def test_transformer_modes_on_the_suites_own_encoders():
    """freeze-K / top-N / lora-R count transformer blocks, for tfmm's transformer text encoder and ViT."""
    from tfmm.encoders.pretrained import transformer_blocks

    encoder = text("transformer", 20, 8, size="small", trainable="freeze-1")
    blocks = transformer_blocks(encoder)
    assert len(blocks) >= 2
    assert not blocks[0].trainable and all(b.trainable for b in blocks[1:])
    trainable = {id(v) for v in encoder.trainable_weights}
    frozen_embedding = [w for layer in encoder.layers if "embedding" in layer.name for w in layer.weights]
    assert frozen_embedding and not any(id(w) in trainable for w in frozen_embedding)
    top = text("transformer", 20, 8, size="small", trainable="top-1")
    assert not any(b.trainable for b in transformer_blocks(top)[:-1]) and transformer_blocks(top)[-1].trainable
    lora = image("vit", trainable="lora-2")
    names = [v.path for v in lora.trainable_weights]
    assert names and all("/qkv/" in n for n in names), names  # each block's query-key-value projection
    with pytest.raises(TfmmError, match="no attention query/value layers"):
        image("cnn", trainable="lora-2")


def test_coordinates_give_each_pixel_its_column_and_row(tmp_path):
    from tfmm.export.tflite import TFLiteRunner, check_builtin_ops, convert_saved_model, single_example_saved_model
    from tfmm.layers import CoordinateChannels

    images = np.random.default_rng(1).random((2, 3, 5, 4), dtype=np.float32)
    out = keras.ops.convert_to_numpy(CoordinateChannels()(images))
    columns, rows = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 3))  # the oracle: NumPy's grid
    np.testing.assert_array_equal(out[..., :4], images)
    for example in out:
        np.testing.assert_allclose(example[..., 4], columns, atol=1e-6)
        np.testing.assert_allclose(example[..., 5], rows, atol=1e-6)

    plain, placed = image("cnn", size="small"), image("cnn", size="small", coordinates=True)
    assert placed.get_layer("stage0_conv0").kernel.shape == (3, 3, 5, 32)  # the first convolution reads 3 colours + 2 coordinates
    assert placed.count_params() == plain.count_params() + 2 * 3 * 3 * 32
    assert_keras_round_trip(placed, IMAGES, atol=1e-5)

    # built-in TFLite ops, and the same numbers as Keras
    single_example_saved_model(placed, [tf.TensorSpec((1, 32, 32, 3), "float32", name="images")], "sequence_output",
                               tmp_path / "saved")
    model = convert_saved_model(tmp_path / "saved")
    check_builtin_ops(model)
    np.testing.assert_allclose(TFLiteRunner(model)(images=IMAGES)["sequence_output"],
                               keras.ops.convert_to_numpy(placed(IMAGES)["sequence_output"]), atol=1e-4)
