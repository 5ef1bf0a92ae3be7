from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer.augment import build_augment_fn, build_augment_layers
from trainer.config import AugmentConfig


@pytest.mark.parametrize("color_mode,channels", [("grayscale", 1), ("rgb", 3)])
def test_augment_shapes_and_range(color_mode, channels):
    fn = build_augment_fn(AugmentConfig(noise_std=40.0), color_mode, seed=1)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 16, 16, channels)), tf.float32)
    labels = tf.one_hot([0, 1, 2, 3], 8)
    out, out_labels = fn(images, labels)
    assert out.shape == images.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0
    assert not np.allclose(out.numpy(), images.numpy())
    np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())


def test_augment_in_tf_data_map():
    fn = build_augment_fn(AugmentConfig(), "rgb", seed=0)
    ds = tf.data.Dataset.from_tensor_slices((tf.fill((6, 16, 16, 3), 200.0), tf.one_hot(range(6), 8))).batch(3)
    batches = list(ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE))
    assert [b[0].shape[0] for b in batches] == [3, 3]
    assert all(0 <= float(tf.reduce_min(b[0])) and float(tf.reduce_max(b[0])) <= 255 for b in batches)


def test_every_switch_off_means_no_augmentation():
    off = AugmentConfig(rotation=0, flip=False, contrast=0, brightness=0, translation=0, zoom=0, noise_std=0,
                        jitter_brightness=0, jitter_contrast=0, jitter_saturation=0, jitter_hue=0)
    assert build_augment_fn(off, "rgb") is None
    assert build_augment_fn(AugmentConfig(enabled=False), "rgb") is None
    assert build_augment_layers(off) is None


def test_layer_selection_follows_config():
    layers = build_augment_layers(AugmentConfig(rotation=0.1, flip=False, contrast=0, brightness=0.1,
                                                translation=0, zoom=0))
    assert [type(layer).__name__ for layer in layers.layers] == ["RandomRotation", "RandomBrightness"]
