"""A few steps under mixed_bfloat16 track float32: the loss stays within tolerance and the logits stay float32."""

import keras
import numpy as np

from tfmm.encoders import build_image_encoder, build_text_encoder, image_encoder_options, text_encoder_options
from tfmm.models import CLIPBackbone, ContrastiveRetriever
from tfmm.train import set_precision

RNG = np.random.default_rng(0)
DATA = {"images": RNG.random((16, 32, 32, 3), dtype=np.float32), "token_ids": RNG.integers(1, 40, (16, 8)).astype("int32"),
        "padding_mask": np.ones((16, 8), "int32")}


def losses(mixed):
    policy = set_precision(mixed)
    try:
        keras.utils.set_random_seed(3)
        model = ContrastiveRetriever(CLIPBackbone(build_image_encoder(image_encoder_options("cnn", size="tiny"), 32), build_text_encoder(text_encoder_options("transformer", size="tiny"), 40, 8), 16))
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        history = model.fit(DATA, batch_size=8, epochs=4, shuffle=False, verbose=0).history["loss"]
        logits = model.similarity(*model(DATA).values())
        return policy, history, model, logits
    finally:
        set_precision(False)


def test_mixed_bfloat16_loss_tracks_float32_and_logits_stay_float32():
    policy32, loss32, _, _ = losses(False)
    policy16, loss16, model, logits = losses(True)
    assert (policy32, policy16) == ("float32", "mixed_bfloat16")
    assert model.backbone.image_encoder.compute_dtype == "bfloat16"
    assert logits.dtype == "float32" and model.head.log_scale.dtype == "float32"
    np.testing.assert_allclose(loss16, loss32, rtol=0.05)
    assert loss16[-1] < loss16[0]
