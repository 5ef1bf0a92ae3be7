"""CutMix on batches from two shuffled streams (``Dataset.zip``, as the seed does).

For each image: lambda ~ Beta(alpha, alpha) (``tensorflow_probability``,
imported only when CutMix is on), a box of side ``sqrt(1 - lambda)`` times the
image side centred at a uniform random point, clipped to the image. The box
is pasted from the second stream, and labels are mixed by the TRUE pasted
area fraction after clipping: ``(1 - area) * y1 + area * y2``. Each image is
mixed with probability ``cutmix.probability`` (else its box is empty).
"""

from __future__ import annotations

from trainer.config import CutMixConfig


def cutmix_boxes(lam, center_y, center_x, height: int, width: int):
    """Clipped boxes ``(y1, y2, x1, x2)`` (int32, end-exclusive) for per-image lambdas.

    The unclipped box has side ``sqrt(1 - lam) * (height, width)`` around the
    centre; clipping to the image can only shrink it.
    """
    import tensorflow as tf

    lam = tf.convert_to_tensor(lam, tf.float32)
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(height, tf.float32) * ratio
    cut_w = tf.cast(width, tf.float32) * ratio
    cy = tf.cast(center_y, tf.float32)
    cx = tf.cast(center_x, tf.float32)
    y1 = tf.cast(tf.clip_by_value(tf.round(cy - cut_h / 2), 0, height), tf.int32)
    y2 = tf.cast(tf.clip_by_value(tf.round(cy + cut_h / 2), 0, height), tf.int32)
    x1 = tf.cast(tf.clip_by_value(tf.round(cx - cut_w / 2), 0, width), tf.int32)
    x2 = tf.cast(tf.clip_by_value(tf.round(cx + cut_w / 2), 0, width), tf.int32)
    return y1, y2, x1, x2


def box_area_fraction(y1, y2, x1, x2, height: int, width: int):
    """Fraction of the image covered by each box (float32)."""
    import tensorflow as tf

    area = tf.cast((y2 - y1) * (x2 - x1), tf.float32)
    return area / float(height * width)


def box_masks(y1, y2, x1, x2, height: int, width: int):
    """(B, H, W, 1) float32 masks, 1 inside each box."""
    import tensorflow as tf

    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = ((rows >= y1[:, None, None]) & (rows < y2[:, None, None])
              & (cols >= x1[:, None, None]) & (cols < x2[:, None, None]))
    return tf.cast(inside, tf.float32)[..., None]


def cutmix_batch(images1, labels1, images2, labels2, cfg: CutMixConfig, seed: int | None = None):
    """Mix one batch pair; returns ``(images, labels)``."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    shape = tf.shape(images1)
    batch = tf.minimum(shape[0], tf.shape(images2)[0])
    images1, labels1 = images1[:batch], labels1[:batch]
    images2, labels2 = images2[:batch], labels2[:batch]
    height, width = images1.shape[1], images1.shape[2]
    lam = tfp.distributions.Beta(cfg.alpha, cfg.alpha).sample(batch)
    center_y = tf.random.uniform([batch], 0, height, dtype=tf.int32)
    center_x = tf.random.uniform([batch], 0, width, dtype=tf.int32)
    y1, y2, x1, x2 = cutmix_boxes(lam, center_y, center_x, height, width)
    apply = tf.random.uniform([batch]) < cfg.probability
    y2 = tf.where(apply, y2, y1)  # an empty box when not applied
    masks = box_masks(y1, y2, x1, x2, height, width)
    area = box_area_fraction(y1, y2, x1, x2, height, width)[:, None]
    images = images1 * (1.0 - masks) + images2 * masks
    labels = (1.0 - area) * tf.cast(labels1, tf.float32) + area * tf.cast(labels2, tf.float32)
    return images, labels


def apply_cutmix_stream(first, second, cfg: CutMixConfig, seed: int | None = None):
    """``Dataset.zip((first, second)).map(cutmix)`` over batched (images, labels) streams."""
    import tensorflow as tf
    import tensorflow_probability  # noqa: F401  (slow import, only when CutMix is on)

    mixed = tf.data.Dataset.zip((first, second))
    return mixed.map(lambda a, b: cutmix_batch(a[0], a[1], b[0], b[1], cfg, seed),
                     num_parallel_calls=tf.data.AUTOTUNE)
