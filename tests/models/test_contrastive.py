import keras
import numpy as np

from tfmm.encoders import build_image_encoder, build_text_encoder
from tfmm.models import CLIPBackbone, ContrastiveRetriever
from tfmm.testing import assert_keras_round_trip

INPUTS = {
    "images": np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32),
    "token_ids": np.array([[1, 7 + i, 12 - i, 2, 0, 0] for i in range(4)], "int32"),
    "padding_mask": np.array([[1, 1, 1, 1, 0, 0]] * 4, "int32"),
}


def build(loss="infonce"):
    backbone = CLIPBackbone(build_image_encoder("cnn", "tiny", 32), build_text_encoder("transformer", "tiny", 20, 6), 16)
    return ContrastiveRetriever(backbone, loss=loss)


def test_embeddings_are_unit_length_and_towers_agree_with_the_pair_model():
    model = build()
    out = model(INPUTS)
    for key in ("image_embedding", "text_embedding"):
        np.testing.assert_allclose(np.linalg.norm(out[key], axis=-1), np.ones(4), rtol=1e-5)
    np.testing.assert_allclose(model.backbone.image_embedder()(INPUTS["images"])["embedding"], out["image_embedding"], atol=1e-6)
    text = {k: INPUTS[k] for k in ("token_ids", "padding_mask")}
    np.testing.assert_allclose(model.backbone.text_embedder()(text)["embedding"], out["text_embedding"], atol=1e-6)


def test_keras_round_trip_keeps_outputs_and_temperature():
    model = build("triplet")
    model.head.log_scale.assign(2.0)
    loaded = assert_keras_round_trip(model, INPUTS)
    assert float(loaded.head.log_scale.numpy()) == 2.0 and loaded.loss_name == "triplet"


def test_fit_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(INPUTS, batch_size=4, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_mixed_precision_keeps_embeddings_and_temperature_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build()
        out = model(INPUTS)
        assert model.backbone.image_encoder.compute_dtype == "bfloat16"
        assert out["image_embedding"].dtype == "float32" and out["text_embedding"].dtype == "float32"
        assert model.head.log_scale.dtype == "float32"
        model.compile(optimizer="adam")
        loss = model.fit(INPUTS, batch_size=4, epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss)
    finally:
        keras.mixed_precision.set_global_policy("float32")
