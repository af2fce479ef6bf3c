"""The contrastive loss under two replicas sees the global batch: loss and gradients equal one device's."""

import subprocess
import sys

GLOBAL_BATCH_CHECK = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, keras, tfmm
from tfmm.encoders import build_image_encoder, build_text_encoder, image_encoder_options, text_encoder_options
from tfmm.models import CLIPBackbone, ContrastiveRetriever
from tfmm.train import choose_strategy

rng = np.random.default_rng(0)
batch = {"images": rng.random((8, 16, 16, 3), dtype=np.float32), "token_ids": rng.integers(1, 30, (8, 6)).astype("int32"),
         "padding_mask": np.ones((8, 6), "int32")}

def build():
    keras.utils.set_random_seed(1)
    return ContrastiveRetriever(CLIPBackbone(build_image_encoder(image_encoder_options("cnn", size="tiny"), 16), build_text_encoder(text_encoder_options("transformer", size="tiny"), 30, 6), 8))

def loss_and_grads(model, data, replicas):
    with tf.GradientTape() as tape:
        loss = model.compute_loss(y_pred=model(data, training=True))
        scaled = loss / replicas  # what Keras' optimizer.scale_loss does under a strategy
    return loss, [tf.convert_to_tensor(g) for g in tape.gradient(scaled, model.trainable_variables)]

single = build()
single_loss, single_grads = loss_and_grads(single, batch, 1)

strategy = choose_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    mirrored = build()
mirrored.set_weights(single.get_weights())
dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).unbatch().batch(8))

@tf.function
def step(data):
    loss, grads = strategy.run(loss_and_grads, args=(mirrored, data, 2))
    mean_loss = strategy.reduce("MEAN", loss, axis=None)
    summed = [strategy.reduce("SUM", g, axis=None) for g in grads]
    return mean_loss, summed

mirrored_loss, mirrored_grads = step(next(iter(dataset)))
print("losses", float(single_loss), float(mirrored_loss))
np.testing.assert_allclose(float(mirrored_loss), float(single_loss), rtol=1e-5)
for variable, a, b in zip(single.trainable_variables, single_grads, mirrored_grads):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6, err_msg=variable.path)

# Without the gather, each replica would score 4 pairs against 4: a different, larger-batch-blind loss.
local = (float(single.loss_fn(*[single(dict((k, v[:4]) for k, v in batch.items()))[k] for k in ("image_embedding", "text_embedding")], single.head.scale()))
         + float(single.loss_fn(*[single(dict((k, v[4:]) for k, v in batch.items()))[k] for k in ("image_embedding", "text_embedding")], single.head.scale()))) / 2
assert abs(local - float(single_loss)) > 1e-3, (local, float(single_loss))
print("OK")
"""


def test_two_replica_loss_and_gradients_equal_single_device_on_the_global_batch():
    result = subprocess.run([sys.executable, "-c", GLOBAL_BATCH_CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "OK" in result.stdout
