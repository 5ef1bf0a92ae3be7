"""The recipe's augmentation in keras.ops, for any Keras backend, on the accelerator."""

from __future__ import annotations

import math


def reflect(coords, size: int):
    """Continuous pixel coordinates folded into [0, size - 1] by half-sample symmetric reflection."""
    from keras import ops

    period = 2.0 * size
    folded = ops.mod(coords + 0.5, period)
    folded = ops.where(folded >= size, period - folded, folded) - 0.5
    return ops.clip(folded, 0.0, size - 1.0)


def augment_layer(augment, seed: int):
    """The recipe's augmentation as one layer of vectorised keras.ops.

    Keras' RandomRotation, RandomTranslation and RandomZoom warp each image
    through ``affine_transform``, which under JAX on a GPU took 0.5 s per batch
    of 128 (100 times the network's own step). Here rotation, horizontal flip,
    translation and zoom are one affine map per image, sampled bilinearly with a
    gather and reflected at the borders (their ``fill_mode="reflect"``); then
    come contrast and brightness (per image, like RandomContrast and
    RandomBrightness), the Gaussian noise and the grayscale jitter of
    ``trainer.augment``. Strengths are those of ``AugmentConfig``.
    """
    import keras
    from keras import ops

    class Augment(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def _uniform(self, shape, strength: float):
            return keras.random.uniform(shape, -strength, strength, seed=self.seed_generator)

        def _warp(self, images):
            count = ops.shape(images)[0]
            height, width = images.shape[1], images.shape[2]
            angle = self._uniform((count, 1, 1), augment.rotation * 2.0 * math.pi)
            zoom = 1.0 + self._uniform((count, 1, 1), augment.zoom)
            shift_x = self._uniform((count, 1, 1), augment.translation * width)
            shift_y = self._uniform((count, 1, 1), augment.translation * height)
            mirror = 1.0
            if augment.flip:
                mirror = ops.where(keras.random.uniform((count, 1, 1), seed=self.seed_generator) < 0.5, -1.0, 1.0)
            ys, xs = ops.meshgrid(ops.arange(height, dtype="float32") - (height - 1) / 2.0,
                                  ops.arange(width, dtype="float32") - (width - 1) / 2.0, indexing="ij")
            xs, ys = xs[None] * mirror * zoom, ys[None] * zoom
            cos, sin = ops.cos(angle), ops.sin(angle)
            source_x = reflect(cos * xs - sin * ys + (width - 1) / 2.0 - shift_x, width)
            source_y = reflect(sin * xs + cos * ys + (height - 1) / 2.0 - shift_y, height)
            x0, y0 = ops.floor(source_x), ops.floor(source_y)
            wx, wy = source_x - x0, source_y - y0
            x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
            x1, y1 = ops.minimum(x0 + 1, width - 1), ops.minimum(y0 + 1, height - 1)
            base = ops.reshape(ops.arange(count, dtype="int32") * (height * width), (-1, 1, 1))
            flat = ops.reshape(images, (-1,))

            def pixel(y, x):
                return ops.take(flat, base + y * width + x)

            top = pixel(y0, x0) * (1.0 - wx) + pixel(y0, x1) * wx
            bottom = pixel(y1, x0) * (1.0 - wx) + pixel(y1, x1) * wx
            return ops.expand_dims(top * (1.0 - wy) + bottom * wy, -1)

        def call(self, images, training=False):
            if not training:
                return images
            per_image = (ops.shape(images)[0], 1, 1, 1)
            images = self._warp(ops.cast(images, "float32"))
            if augment.contrast > 0:
                mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
                images = mean + (images - mean) * (1.0 + self._uniform(per_image, augment.contrast))
            if augment.brightness > 0:
                images = images + 255.0 * self._uniform(per_image, augment.brightness)
            if augment.noise_std > 0:
                images = images + keras.random.normal(ops.shape(images), stddev=augment.noise_std,
                                                      seed=self.seed_generator)
            x = ops.clip(images, 0.0, 255.0) / 255.0
            if augment.jitter_brightness > 0:
                x = x + self._uniform(per_image, augment.jitter_brightness)
            if augment.jitter_contrast > 0:
                mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
                x = mean + (x - mean) * (1.0 + self._uniform(per_image, augment.jitter_contrast))
            return ops.clip(x, 0.0, 1.0) * 255.0

    return Augment(name="augment")
