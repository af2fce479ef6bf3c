"""The text-to-image GAN: its losses against NumPy, one optimizer step on both networks with the discriminator's
learning-rate multiple, resume of both networks from the step backup, seeded sampling and the options it refuses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmm.config import SamplingConfig, TrainConfig
from tfmm.errors import TfmmError
from tfmm.models import text_to_image_gan
from tfmm.testing import tiny_tasks
from tfmm.train.backup import checkpoint_manager, restore_latest
from tfmm.train.fit import make_optimizer

PROMPTS = ["a small red circle", "a large blue star left of a white shape", "a green square", "a white shape",
           "a red circle", "no purple triangle", "a green square", "a small red circle"]


@pytest.fixture(scope="module")
def batch():
    gan = tiny_tasks.gan()
    return gan.preprocessor({"prompts": tf.constant(PROMPTS), "images": tiny_tasks.images(len(PROMPTS))})


def test_losses_match_numpy(batch, monkeypatch):
    gan = tiny_tasks.gan()
    noise = tf.constant(np.random.default_rng(1).normal(size=(len(PROMPTS), 4)).astype("float32"))
    monkeypatch.setattr(text_to_image_gan, "draw_noise", lambda *args: noise)
    got = {k: float(v) for k, v in gan._gan_losses(batch, training=False).items()}

    text = {"text_ids": batch["text_ids"], "padding_mask": batch["padding_mask"]}
    fake = gan.backbone({**text, "noise": noise}, training=False)["images"]
    score = lambda images, text: gan.discriminator({"images": images, **text}, training=False)["logits"].numpy()  # noqa: E731
    real = score(batch["images"], text)
    wrong = score(batch["images"], {k: tf.roll(v, 1, axis=0) for k, v in text.items()})
    generated = score(fake, text)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    d_loss = relu(1 - real).mean() + 0.5 * (relu(1 + wrong).mean() + relu(1 + generated).mean())
    assert got["d_loss"] == pytest.approx(d_loss, rel=1e-5)
    assert got["g_loss"] == pytest.approx(-generated.mean(), rel=1e-5, abs=1e-6)
    assert got["match_accuracy"] == pytest.approx(np.mean(real > wrong))
    # R1 on every fourth real pair: the squared gradient norm, its gradient checked by central differences.
    squared = []
    for i in range(0, len(PROMPTS), text_to_image_gan.R1_EVERY):
        image = tf.constant(batch["images"][i:i + 1])
        one = {k: v[i:i + 1] for k, v in text.items()}
        with tf.GradientTape() as tape:
            tape.watch(image)
            logit = gan.discriminator({"images": image, **one}, training=False)["logits"][0]
        gradient = tape.gradient(logit, image).numpy()
        direction = np.random.default_rng(i).normal(size=gradient.shape).astype("float32")
        direction /= np.linalg.norm(direction)
        step = 2e-3
        numeric = (score(image + step * direction, one)[0] - score(image - step * direction, one)[0]) / (2 * step)
        numeric = float(numeric)
        assert numeric == pytest.approx(float(np.sum(gradient * direction)), rel=0.1, abs=1e-4)
        squared.append(np.sum(gradient ** 2))
    assert got["r1"] == pytest.approx(np.mean(squared), rel=1e-4)


def test_one_step_moves_both_networks_the_discriminator_at_its_multiple(batch):
    gan = tiny_tasks.gan(discriminator_learning_rate=4.0)
    train = TrainConfig(learning_rate=1e-3, weight_decay=0.0, clipnorm=0.0, warmup_fraction=0.0, adam_beta_1=0.5)
    gan.compile(optimizer=make_optimizer(train, 1000, gan.learning_rate_multipliers()), run_eagerly=True)
    before = {v.path: v.numpy().copy() for v in gan.trainable_variables}
    logs = gan.train_on_batch({"prompts": tf.constant(PROMPTS), "images": tiny_tasks.images(len(PROMPTS))},
                              return_dict=True)
    assert int(gan.optimizer.iterations.numpy()) == 1 and set(logs) == {"d_loss", "g_loss", "r1", "match_accuracy"}

    def median_move(variables):  # Adam's first step moves each weight by about its learning rate
        moves = np.concatenate([np.abs(v.numpy() - before[v.path]).ravel() for v in variables])
        return np.median(moves[moves > 0])

    generator, discriminator = median_move(gan.backbone.trainable_variables), median_move(gan.discriminator.trainable_variables)
    assert generator == pytest.approx(1e-3, rel=0.1) and discriminator == pytest.approx(4e-3, rel=0.1)


def test_the_step_backup_restores_both_networks_and_the_optimizer(batch, tmp_path):
    def trained(steps):
        gan = tiny_tasks.gan()
        gan.compile(optimizer=make_optimizer(TrainConfig(weight_decay=0.0), 100, gan.learning_rate_multipliers()),
                    run_eagerly=True)
        for _ in range(steps):
            gan.train_on_batch({"prompts": tf.constant(PROMPTS), "images": tiny_tasks.images(len(PROMPTS))})
        return gan

    gan = trained(2)
    _, manager = checkpoint_manager(gan, tmp_path)
    manager.save(checkpoint_number=2)
    fresh = trained(0)
    checkpoint, fresh_manager = checkpoint_manager(fresh, tmp_path)
    assert restore_latest(checkpoint, fresh_manager) == 2
    for ours, theirs in zip(gan.discriminator.weights + gan.backbone.weights, fresh.discriminator.weights + fresh.backbone.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    for ours, theirs in zip(gan.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


def test_generate_is_seeded_and_temperature_scales_the_noise():
    gan = tiny_tasks.gan()
    first, again, other = gan.generate(PROMPTS[:3], seed=3), gan.generate(PROMPTS[:3], seed=3), gan.generate(PROMPTS[:3], seed=4)
    assert first.dtype == np.uint8 and first.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Temperature 0.5 is the same draw at half the scale: the generator's input noise halves.
    seed = tf.constant([3, 1], tf.int64)
    np.testing.assert_allclose(text_to_image_gan.draw_noise(2, 4, seed, 0.5).numpy(),
                               0.5 * text_to_image_gan.draw_noise(2, 4, seed, 1.0).numpy(), rtol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda gan: gan.generate(["a red circle"], sampling=SamplingConfig(top_k=5)), "top_k 5 / top_p 1.0: the GAN draws no tokens"),
    (lambda gan: gan.generate(["a red circle"], sampling=SamplingConfig(temperature=0.0)), "temperature must be above 0"),
    (lambda gan: gan.generate(["a red circle"], guidance_scale=3.0), "guidance_scale 3.0: the GAN has no classifier-free"),
    (lambda gan: gan.generate([" "]), "prompt #0 is empty"),
    (lambda gan: gan.edit(np.zeros((16, 16, 3), np.uint8), (0, 0, 4, 4), "a red circle"), "cannot edit an image"),
])
def test_options_it_cannot_honour_are_refused(call, message):
    with pytest.raises(TfmmError, match=message.replace("(", r"\(")):
        call(tiny_tasks.gan())


TWO_REPLICAS = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, tfmm
from tfmm.config import TrainConfig
from tfmm.testing import tiny_tasks
from tfmm.train import choose_strategy
from tfmm.train.fit import make_optimizer

strategy = choose_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    gan = tiny_tasks.gan()
    gan.compile(optimizer=make_optimizer(TrainConfig(weight_decay=0.0), 10, gan.learning_rate_multipliers()))
prompts = ["a small red circle", "a green square", "a white shape", "no purple triangle"] * 2
data = tf.data.Dataset.from_tensor_slices({"prompts": prompts, "images": tiny_tasks.images(8)}).batch(8).repeat()
before = [v.numpy().copy() for v in gan.trainable_variables]
history = gan.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False).history
assert all(np.isfinite(history[k][-1]) for k in ("d_loss", "g_loss", "r1")), history
assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, gan.trainable_variables) if "kernel" in v.path)
for v in gan.trainable_weights:  # the same on both replicas (batch-norm statistics are per replica, read as their mean)
    values = [np.asarray(x) for x in v.value.values]  # the per-replica copies of a mirrored variable
    assert len(values) == 2 and np.array_equal(values[0], values[1]), v.path
print("OK", int(gan.optimizer.iterations.numpy()))
"""


def test_trains_under_two_replicas_with_its_weights_in_sync():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", TWO_REPLICAS], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "OK 1" in result.stdout, result.stderr[-3000:]
