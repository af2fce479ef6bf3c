import keras
import numpy as np
import tensorflow as tf
from keras import ops
from keras.src.losses.loss import scale_loss_for_distribution

from tfmm.config import SamplingConfig
from tfmm.errors import TfmmError
from tfmm.models.gan_backbones import GANDiscriminator, GANGeneratorBackbone
from tfmm.models.task import Task
from tfmm.models.text_to_image_preprocessor import TextToImagePreprocessor
from tfmm.models.vqvae import to_uint8

DISCRIMINATOR = "discriminator"
R1_EVERY = 4  # every fourth real pair gets the R1 penalty  # the path prefix of the discriminator's variables (learning-rate multipliers)


def draw_noise(count, noise_dim, seed, temperature):
    """The generator's noise for `count` images: N(0, temperature²) from a (2,) int seed. Temperature below 1
    is the truncation trick: samples closer to the typical image, less varied."""
    return tf.random.stateless_normal([count, noise_dim], seed) * tf.cast(temperature, tf.float32)


@keras.saving.register_keras_serializable(package="tfmm")
class TextToImageGAN(Task):
    """Text to image with a GAN: a `GANGeneratorBackbone` (the backbone; what is exported) and a
    `GANDiscriminator` trained against it, both in the preset.

    `fit` on raw `{"prompts", "images"}` batches runs its own `train_step`: one generator pass, the
    discriminator on real-matched, real-mismatched (each image with the next one's prompt) and generated
    pairs, and one optimizer step on both networks at once (simultaneous gradient descent, so the suite's
    optimizer, schedule, step backup and gradient accumulation apply unchanged; the discriminator's
    learning rate is `discriminator_learning_rate` × the generator's through the layer-wise multipliers).
    Losses: hinge; an R1 penalty (γ/2·‖∇ₓD(x, t)‖² on every fourth real matched pair) keeps the discriminator smooth. The
    logs are `d_loss`, `g_loss`, `r1` and `match_accuracy` (the share of real images the discriminator scores
    higher with their own prompt than with another's: whether it reads the text). There is no `loss`: the best
    weights are the last ones.

    Raw inputs: `generate(prompts, seed)` → uint8 images; `sampling.temperature` scales the noise (top-k and
    top-p draw no tokens here and must stay off).
    """

    backbone_cls = GANGeneratorBackbone
    preprocessor_cls = TextToImagePreprocessor

    def __init__(self, backbone, discriminator, preprocessor=None, r1_gamma=1.0, discriminator_learning_rate=4.0,
                 temperature=1.0, **kwargs):
        if isinstance(discriminator, dict):
            discriminator = keras.layers.deserialize(discriminator)
        self.backbone, self.discriminator, self.preprocessor = backbone, discriminator, preprocessor
        inputs = backbone.input
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.r1_gamma, self.discriminator_learning_rate = r1_gamma, discriminator_learning_rate
        self.sampling = SamplingConfig(temperature=temperature)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "r1", "match_accuracy")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def image_size(self):
        return self.backbone.image_size

    def learning_rate_multipliers(self):
        """{variable path: factor} for the layer-wise optimizer: the discriminator's rate relative to the generator's."""
        return {v.path: self.discriminator_learning_rate for v in self.discriminator.trainable_variables}

    # ------------------------------------------------------------------------------------------ training

    def _gan_losses(self, x, training):
        images, text = x["images"], {"text_ids": x["text_ids"], "padding_mask": x["padding_mask"]}
        batch = ops.shape(images)[0]
        seed = tf.random.uniform([2], 0, 2 ** 31 - 1, tf.int32)
        fake = self.backbone({**text, "noise": draw_noise(batch, self.backbone.noise_dim, seed, 1.0)},
                             training=training)["images"]
        # R1 on a quarter of the real pairs: an unbiased estimate at a quarter of the double back-propagation.
        some = {k: v[::R1_EVERY] for k, v in x.items()}
        with tf.GradientTape(watch_accessed_variables=False) as r1_tape:
            r1_tape.watch(some["images"])
            total = ops.sum(self.discriminator(some, training=training)["logits"])
        gradient = r1_tape.gradient(total, some["images"])
        r1 = ops.mean(ops.sum(ops.square(gradient), axis=(1, 2, 3)))
        mismatched = {k: ops.roll(v, 1, axis=0) for k, v in text.items()}
        logits = self.discriminator({"images": ops.concatenate([images, images, fake], 0),
                                     **{k: ops.concatenate([text[k], mismatched[k], text[k]], 0) for k in text}},
                                    training=training)["logits"]
        real, wrong_text, generated = logits[:batch], logits[batch:2 * batch], logits[2 * batch:]
        d_loss = (ops.mean(ops.relu(1.0 - real))
                  + 0.5 * (ops.mean(ops.relu(1.0 + wrong_text)) + ops.mean(ops.relu(1.0 + generated))))
        g_loss = -ops.mean(generated)
        # A batch of one has no other prompt to mismatch with; a repeated prompt counts as a miss, as it should.
        match = ops.mean(ops.cast(real > wrong_text, "float32"))
        return {"d_loss": d_loss, "g_loss": g_loss, "r1": r1, "match_accuracy": match}

    def _logs(self, losses):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return self._with_vector_logs({name: tracker.result() for name, tracker in self.trackers.items()})

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Under a distribution strategy Keras builds the model by calling it on a training batch, which holds images
        # where the generator takes noise. Both networks are built when made: only the optimizer is left to build.
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        self._post_build()

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        generator_variables = self.backbone.trainable_variables
        discriminator_variables = self.discriminator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            losses = self._gan_losses(x, training=True)
            d_total = scale_loss_for_distribution(losses["d_loss"] + 0.5 * self.r1_gamma * losses["r1"])
            g_total = scale_loss_for_distribution(losses["g_loss"])
            d_total, g_total = self.optimizer.scale_loss(d_total), self.optimizer.scale_loss(g_total)
        gradients = dict(zip([id(v) for v in discriminator_variables + generator_variables],
                             tape.gradient(d_total, discriminator_variables) + tape.gradient(g_total, generator_variables)))
        del tape
        # In the model's variable order: an optimizer built here lays out its slots as one built from the model does.
        self.optimizer.apply_gradients([(gradients[id(v)], v) for v in self.trainable_variables])
        return self._logs(losses)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._logs(self._gan_losses(x, training=False))

    # ------------------------------------------------------------------------------------------ sampling

    def images_tensor(self, text_ids, padding_mask, seed, temperature):
        """(batch, S, S, 3) float 0..1 for tokenized prompts (the SavedModel runs this)."""
        noise = draw_noise(tf.shape(text_ids)[0], self.backbone.noise_dim, seed, temperature)
        return self.backbone({"text_ids": text_ids, "padding_mask": padding_mask, "noise": noise}, training=False)["images"]

    def check_sampling(self, sampling, guidance_scale=None):
        """The sampling settings the GAN honours: a temperature above 0; no top-k / top-p / guidance."""
        if sampling.temperature <= 0:
            raise TfmmError(f"temperature must be above 0, got {sampling.temperature}")
        if sampling.top_k or sampling.top_p != 1.0:
            raise TfmmError(f"top_k {sampling.top_k} / top_p {sampling.top_p}: the GAN draws no tokens; leave them at "
                            "0 / 1 (sampling.temperature scales its noise)")
        if guidance_scale not in (None, 1.0):
            raise TfmmError(f"guidance_scale {guidance_scale}: the GAN has no classifier-free guidance; leave it unset")

    def generate(self, prompts, seed=0, sampling=None, guidance_scale=None, batch_size=64):
        """Prompts → uint8 images (n, S, S, 3), one per prompt; the same seed gives the same images.
        `sampling` (a `SamplingConfig`) defaults to the model's; only its temperature applies."""
        prompts = self.preprocessor.check_texts(list(prompts), "prompt")
        sampling = sampling or self.sampling
        self.check_sampling(sampling, guidance_scale)

        function = self.graph_function("generate", self._generate_graph)
        return np.concatenate([function(prompts=tf.constant(prompts[start:start + batch_size]),
                                        seed=tf.constant(seed + start, tf.int64),
                                        temperature=tf.constant(sampling.temperature, tf.float32))["images"].numpy()
                               for start in range(0, len(prompts), batch_size)])

    def _generate_graph(self, prompts, seed, temperature):
        tokens = self.preprocessor.tokenize(prompts)
        images = self.images_tensor(tokens["token_ids"], tokens["padding_mask"], tf.stack([seed, tf.constant(1, tf.int64)]),
                                    temperature)
        return {"images": to_uint8(images)}

    def edit(self, *args, **kwargs):
        raise TfmmError("the GAN generator cannot edit an image (it draws whole images); edit with model.generator = "
                        "\"tokens\"")

    def get_config(self):
        return {**super().get_config(), "discriminator": keras.layers.serialize(self.discriminator),
                "r1_gamma": self.r1_gamma, "discriminator_learning_rate": self.discriminator_learning_rate,
                "temperature": self.sampling.temperature}


def build_gan(preprocessor, image_size, options):
    """A `TextToImageGAN` from the generate app's `gan` settings (`GANConfig`)."""
    shared = dict(vocabulary_size=preprocessor.vocabulary_size, sequence_length=preprocessor.sequence_length,
                  image_size=image_size, channels=options.channels, text_dim=options.text_dim,
                  text_layers=options.text_layers, attention_heads=options.attention_heads)
    generator = GANGeneratorBackbone(noise_dim=options.noise_dim, attention_sizes=tuple(options.attention_sizes),
                                     name="gan_generator", **shared)
    discriminator = GANDiscriminator(name=DISCRIMINATOR, **shared)
    return TextToImageGAN(generator, discriminator, preprocessor, options.r1_gamma, options.discriminator_learning_rate,
                          name="gan")
