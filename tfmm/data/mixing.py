"""MixUp and CutMix on a batch of uint8 images, stateless (keyed by the batch's seed, like `augment`).

Each example i is blended with a partner perm(i) of the same batch: MixUp blends the whole images
(λ·xᵢ + (1−λ)·x_perm(i)); CutMix pastes a box of the partner covering a share 1−λ of the image. λ is
drawn from Beta(α, α) once per batch, as in both papers; for CutMix it is the share the box really
leaves after clipping to the image. The task's loss takes λ·loss(yᵢ) + (1−λ)·loss(y_perm(i)) (see
`MultimodalClassifier.compute_loss`), which is the loss of the soft label without building it.
"""

import tensorflow as tf

# Keys of the label dict that carry the mix: the partners' labels ({task: labels}) and λ per example.
MIX_PARTNER, MIX_WEIGHT = "mix_partner", "mix_weight"


def _beta(alpha, seed):
    a = tf.random.stateless_gamma([], tf.random.experimental.stateless_fold_in(seed, 0), alpha)
    b = tf.random.stateless_gamma([], tf.random.experimental.stateless_fold_in(seed, 1), alpha)
    return a / (a + b)


def mix_images(images, seed, mixup=0.0, cutmix=0.0):
    """(mixed uint8 images, partner index per example, λ per example) for a batch (N, H, W, 3).

    `mixup` / `cutmix` are the Beta α of each (0 = off); with both on, each batch uses one of them,
    drawn with equal odds."""
    if not (mixup or cutmix):
        raise ValueError("mix_images needs mixup or cutmix > 0")
    seed = tf.cast(seed, tf.int64)
    count = tf.shape(images)[0]
    # A random cycle through the batch: every example gets another one as its partner (a plain shuffle
    # leaves some examples paired with themselves, unmixed).
    order = tf.random.experimental.stateless_shuffle(tf.range(count), tf.random.experimental.stateless_fold_in(seed, 2))
    partner = tf.scatter_nd(order[:, None], tf.roll(order, -1, 0), [count])
    x, other = tf.cast(images, tf.float32), tf.cast(tf.gather(images, partner), tf.float32)
    if mixup and cutmix:
        use_cutmix = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 3)) < 0.5
    else:
        use_cutmix = tf.constant(bool(cutmix))

    def blend():
        weight = _beta(float(mixup or 1.0), tf.random.experimental.stateless_fold_in(seed, 4))
        return x * weight + other * (1.0 - weight), weight

    def paste():
        weight = _beta(float(cutmix or 1.0), tf.random.experimental.stateless_fold_in(seed, 5))
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        side = tf.sqrt(1.0 - weight)
        box_h = tf.cast(tf.round(side * tf.cast(height, tf.float32)), tf.int32)
        box_w = tf.cast(tf.round(side * tf.cast(width, tf.float32)), tf.int32)
        centre = tf.random.stateless_uniform([2], tf.random.experimental.stateless_fold_in(seed, 6))
        cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
        cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
        top, bottom = tf.maximum(cy - box_h // 2, 0), tf.minimum(cy + (box_h - box_h // 2), height)
        left, right = tf.maximum(cx - box_w // 2, 0), tf.minimum(cx + (box_w - box_w // 2), width)
        rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
        inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
        covered = tf.reduce_mean(tf.cast(inside, tf.float32))
        return tf.where(inside[None, :, :, None], other, x), 1.0 - covered

    mixed, weight = tf.cond(use_cutmix, paste, blend)
    mixed = tf.cast(tf.clip_by_value(tf.round(mixed), 0.0, 255.0), tf.uint8)
    return mixed, partner, tf.fill([count], weight)
