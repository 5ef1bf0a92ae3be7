"""Training-time augmentation, applied in tf.data with ``map`` (never inside the model).

Random layers inside a saved model break TFLite conversion, so the seed's
``AugmentLayers`` Sequential (RandomRotation, RandomFlip, RandomContrast,
RandomBrightness, RandomTranslation, plus RandomZoom) is called inside the
map function with ``training=True``, followed by the seed's
``AddGaussianNoise`` and ``ColorJitter``. Input and output are float32 batches
of pixels in [0, 255].
"""

from __future__ import annotations

from typing import Callable

from trainer.config import AugmentConfig

VALUE_RANGE = (0.0, 255.0)


def build_augment_layers(cfg: AugmentConfig, seed: int | None = None):
    """The Keras random-layer Sequential for the enabled geometric/photometric ops (or None)."""
    import keras
    from keras import layers

    ops = []
    if cfg.rotation > 0:
        ops.append(layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed))
    if cfg.flip:
        ops.append(layers.RandomFlip("horizontal", seed=seed))
    if cfg.contrast > 0:
        ops.append(layers.RandomContrast(cfg.contrast, value_range=VALUE_RANGE, seed=seed))
    if cfg.brightness > 0:
        ops.append(layers.RandomBrightness(cfg.brightness, value_range=VALUE_RANGE, seed=seed))
    if cfg.translation > 0:
        ops.append(layers.RandomTranslation(cfg.translation, cfg.translation, fill_mode="reflect", seed=seed))
    if cfg.zoom > 0:
        ops.append(layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=seed))
    return keras.Sequential(ops, name="augment") if ops else None


def add_gaussian_noise(images, std: float):
    """``AddGaussianNoise``: per-pixel N(0, std) noise, in pixel units."""
    import tensorflow as tf

    if std <= 0:
        return images
    return images + tf.random.normal(tf.shape(images), stddev=std, dtype=images.dtype)


def color_jitter(images, cfg: AugmentConfig, color_mode: str):
    """``ColorJitter``: brightness/saturation/hue (rgb) or brightness/contrast (grayscale).

    Brightness, saturation and contrast factors are drawn per image; hue per batch.
    """
    import tensorflow as tf

    x = images / 255.0
    per_image = tf.stack([tf.shape(x)[0], 1, 1, 1])

    def factor(strength: float):
        return tf.random.uniform(per_image, -strength, strength)

    if cfg.jitter_brightness > 0:
        x = x + factor(cfg.jitter_brightness)
    if color_mode == "rgb":
        if cfg.jitter_saturation > 0:
            gray = tf.image.rgb_to_grayscale(tf.clip_by_value(x, 0.0, 1.0))
            x = gray + (x - gray) * (1.0 + factor(cfg.jitter_saturation))
        if cfg.jitter_hue > 0:
            x = tf.image.random_hue(tf.clip_by_value(x, 0.0, 1.0), cfg.jitter_hue)
    elif cfg.jitter_contrast > 0:
        mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
        x = mean + (x - mean) * (1.0 + factor(cfg.jitter_contrast))
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def build_augment_fn(cfg: AugmentConfig, color_mode: str, seed: int | None = None) -> Callable | None:
    """``fn(images, labels) -> (images, labels)`` for ``Dataset.map``; None when all is off."""
    if not cfg.enabled:
        return None
    layer_stack = build_augment_layers(cfg, seed)
    jitter = cfg.jitter_brightness > 0 or (
        cfg.jitter_saturation > 0 or cfg.jitter_hue > 0 if color_mode == "rgb" else cfg.jitter_contrast > 0
    )
    if layer_stack is None and cfg.noise_std <= 0 and not jitter:
        return None

    def augment(images, labels):
        import tensorflow as tf

        if layer_stack is not None:
            images = layer_stack(images, training=True)
        images = add_gaussian_noise(images, cfg.noise_std)
        if jitter:
            images = color_jitter(tf.clip_by_value(images, *VALUE_RANGE), cfg, color_mode)
        return tf.clip_by_value(images, *VALUE_RANGE), labels

    return augment
