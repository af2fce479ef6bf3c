import keras
import numpy as np
import pytest

from tfmm.errors import TfmmError
from tfmm.layers import FUSIONS, FoldGroups, FrameAttentionPooling, RepeatForGroups, UnfoldGroups, build_fusion, fusion_options
from tfmm.layers.fusion import BASELINES, BilinearFusion, ConcatFusion, GatedFusion, LateFusion
from tfmm.testing import assert_layer_round_trip

RNG = np.random.default_rng(0)


def features(batch=3, regions=4, tokens=5, image_dim=6, text_dim=7):
    mask = np.ones((batch, tokens), "int32")
    mask[0, 3:] = 0
    return {
        "image_sequence": RNG.normal(size=(batch, regions, image_dim)).astype("float32"),
        "image_pooled": RNG.normal(size=(batch, image_dim)).astype("float32"),
        "text_sequence": RNG.normal(size=(batch, tokens, text_dim)).astype("float32"),
        "text_pooled": RNG.normal(size=(batch, text_dim)).astype("float32"),
        "text_mask": mask,
    }


def fusion(name, **values):
    """A fusion with tiny settings: only those its variant takes."""
    options = FUSIONS.options(name)
    tiny = {"hidden_dim": 8, "num_heads": 2, "num_layers": 2, "rank": 3, **values}
    return build_fusion(options(**{k: v for k, v in tiny.items() if k in options.__dataclass_fields__}), num_outputs=3)


@pytest.mark.parametrize("name", [n for n in FUSIONS.names() if n not in BASELINES])
def test_every_fusion_fuses_round_trips_and_uses_both_modalities(name):
    x = features()
    layer = fusion(name)
    out = layer(x)
    assert out["fused"].shape == (3, 3 if layer.returns_logits else 8)
    assert np.isfinite(np.asarray(out["fused"])).all()
    assert_layer_round_trip(fusion(name), x, atol=1e-5)
    # Changing either modality changes the fused vector.
    for key in ("image_sequence", "image_pooled"), ("text_sequence", "text_pooled"):
        changed = {**x, **{k: x[k] + 1.0 for k in key}}
        assert not np.allclose(layer(changed)["fused"], out["fused"], atol=1e-4), key


def test_concat_fusion_matches_numpy():
    x = features()
    layer = ConcatFusion(hidden_dim=4)
    out = np.asarray(layer(x)["fused"])
    kernel, bias = layer.projection.get_weights()
    h = np.concatenate([x["image_pooled"], x["text_pooled"]], -1) @ kernel + bias
    h = np.asarray(keras.activations.gelu(h))
    expected = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_late_fusion_is_a_weighted_sum_of_unimodal_logits():
    x = features()
    layer = LateFusion(num_outputs=3, hidden_dim=4)
    out = layer(x)
    layer.modality_logits.assign([5.0, -5.0])  # almost all weight on the image head
    image_only = layer.heads["image"][1](layer.heads["image"][0](x["image_pooled"]))
    np.testing.assert_allclose(layer(x)["fused"], image_only, atol=1e-3)
    np.testing.assert_allclose(np.asarray(out["modality_weights"]), 0.5)


def test_gated_fusion_gate_picks_between_modalities():
    x = features()
    layer = GatedFusion(hidden_dim=4)
    out = layer(x)
    gate = np.asarray(out["gate"])
    assert ((gate > 0) & (gate < 1)).all()
    image = np.tanh(x["image_pooled"] @ layer.image_projection.kernel.numpy() + layer.image_projection.bias.numpy())
    text = np.tanh(x["text_pooled"] @ layer.text_projection.kernel.numpy() + layer.text_projection.bias.numpy())
    np.testing.assert_allclose(out["fused"], gate * image + (1 - gate) * text, atol=1e-5)


def test_bilinear_fusion_is_multiplicative():
    x = features()
    layer = BilinearFusion(hidden_dim=4, rank=2)
    layer(x)
    zero_image = {**x, "image_pooled": np.zeros_like(x["image_pooled"])}
    layer.image_projection.bias.assign(np.zeros_like(layer.image_projection.bias.numpy()))
    # A zero image vector zeroes the product, whatever the question: the output is the norm of zeros.
    a = np.asarray(layer(zero_image)["fused"])
    b = np.asarray(layer({**zero_image, "text_pooled": x["text_pooled"] * 3})["fused"])
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", ["cross_attention", "co_attention"])
def test_attention_fusions_return_normalised_attention_and_ignore_padding(name):
    x = features()
    layer = fusion(name)
    out = layer(x)
    attention = np.asarray(out["attention"])
    assert attention.shape == (3, 2, 5, 4)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    # Padded question tokens (example 0, tokens 3 and 4) must not change the answer.
    noisy = {k: v.copy() for k, v in x.items()}
    noisy["text_sequence"][0, 3:] += 10.0
    np.testing.assert_allclose(layer(noisy)["fused"][0], out["fused"][0], atol=1e-4)


def test_co_attention_image_side_attends_only_real_tokens():
    x = features()
    out = fusion("co_attention", num_layers=1)(x)
    image_attention = np.asarray(out["image_attention"])  # (batch, heads, regions, tokens)
    np.testing.assert_allclose(image_attention[0, :, :, 3:], 0.0, atol=1e-6)


def test_unknown_fusion_and_options_it_does_not_take_are_named():
    with pytest.raises(TfmmError, match="co_attention"):
        fusion_options("average")
    with pytest.raises(TypeError, match="rank"):
        fusion_options("concat", rank=2)
    assert build_fusion(fusion_options("image_only")) is None  # a baseline: the backbone reads one modality


def test_groups_fold_repeat_unfold():
    questions = np.zeros((2, 3, 4), "int32")
    x = np.arange(2 * 5, dtype="float32").reshape(2, 5)
    repeated = np.asarray(RepeatForGroups()(x, questions))
    np.testing.assert_array_equal(repeated, np.repeat(x, 3, axis=0))
    folded = np.asarray(FoldGroups()(questions))
    assert folded.shape == (6, 4)
    np.testing.assert_array_equal(UnfoldGroups()(repeated, questions), np.repeat(x[:, None], 3, axis=1))


def test_frame_attention_pooling_weights_frames_per_head():
    layer = FrameAttentionPooling(num_heads=2, key_dim=4)
    inputs = {"frame_sequence": RNG.normal(size=(2, 3, 4, 6)).astype("float32"),
              "frame_pooled": RNG.normal(size=(2, 3, 6)).astype("float32"),
              "question": RNG.normal(size=(2, 5)).astype("float32")}
    out = layer(inputs)
    assert out["image_sequence"].shape == (2, 8, 6) and out["image_pooled"].shape == (2, 6)
    np.testing.assert_allclose(np.asarray(out["frame_attention"]).sum(-1), 1.0, atol=1e-5)
    # With every frame the same, any weighting gives that frame back (plus the head embedding, zero at init).
    same = {**inputs, "frame_sequence": np.repeat(inputs["frame_sequence"][:, :1], 3, axis=1)}
    np.testing.assert_allclose(layer(same)["image_sequence"][:, :4], same["frame_sequence"][:, 0], atol=1e-5)
    assert_layer_round_trip(FrameAttentionPooling(num_heads=2, key_dim=4), inputs, atol=1e-5)
