from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import CutMixConfig
from trainer.cutmix import apply_cutmix_stream, box_area_fraction, box_masks, cutmix_batch, cutmix_boxes


@pytest.mark.parametrize("lam,cy,cx,expected", [
    (0.75, 8, 8, (4, 12, 4, 12)),  # side sqrt(0.25)*16 = 8 centred
    (0.75, 0, 0, (0, 4, 0, 4)),  # clipped at the top-left corner
    (0.75, 16, 16, (12, 16, 12, 16)),  # clipped at the bottom-right
    (1.0, 8, 8, (8, 8, 8, 8)),  # lambda 1: empty box
    (0.0, 8, 8, (0, 16, 0, 16)),  # lambda 0: whole image
])
def test_boxes_are_clipped(lam, cy, cx, expected):
    boxes = cutmix_boxes(tf.constant([lam]), tf.constant([cy]), tf.constant([cx]), 16, 16)
    assert tuple(int(b[0]) for b in boxes) == expected


@pytest.mark.parametrize("box,fraction", [((4, 12, 4, 12), 0.25), ((0, 4, 0, 4), 1 / 16), ((8, 8, 0, 16), 0.0)])
def test_area_fraction(box, fraction):
    y1, y2, x1, x2 = (tf.constant([v]) for v in box)
    assert float(box_area_fraction(y1, y2, x1, x2, 16, 16)[0]) == pytest.approx(fraction)
    assert float(tf.reduce_mean(box_masks(y1, y2, x1, x2, 16, 16))) == pytest.approx(fraction)


def test_batch_labels_mix_by_pasted_area():
    tf.random.set_seed(3)
    n = 16
    images1, images2 = tf.zeros((n, 16, 16, 1)), tf.fill((n, 16, 16, 1), 255.0)
    labels1 = tf.one_hot([0] * n, 8)
    labels2 = tf.one_hot([1] * n, 8)
    images, labels = cutmix_batch(images1, labels1, images2, labels2, CutMixConfig(alpha=1.0, probability=1.0))
    np.testing.assert_allclose(labels.numpy().sum(1), 1.0, rtol=1e-6)
    pasted = images.numpy().mean(axis=(1, 2, 3)) / 255.0  # fraction of pixels from the second image
    np.testing.assert_allclose(labels.numpy()[:, 1], pasted, atol=1e-6)
    assert 0 < pasted.mean() < 1


def test_probability_zero_leaves_batch_alone():
    images1 = tf.zeros((4, 8, 8, 3))
    labels1 = tf.one_hot([0, 1, 2, 3], 4)
    images, labels = cutmix_batch(images1, labels1, tf.ones((4, 8, 8, 3)), tf.one_hot([3, 3, 3, 3], 4),
                                  CutMixConfig(probability=0.0))
    np.testing.assert_array_equal(images.numpy(), images1.numpy())
    np.testing.assert_array_equal(labels.numpy(), labels1.numpy())


def test_zip_of_two_streams():
    first = tf.data.Dataset.from_tensor_slices((tf.zeros((6, 8, 8, 1)), tf.one_hot([0] * 6, 2))).batch(3)
    second = tf.data.Dataset.from_tensor_slices((tf.ones((6, 8, 8, 1)), tf.one_hot([1] * 6, 2))).batch(3)
    batches = list(apply_cutmix_stream(first, second, CutMixConfig(probability=1.0)))
    assert len(batches) == 2
    for images, labels in batches:
        np.testing.assert_allclose(labels.numpy()[:, 1], images.numpy().mean(axis=(1, 2, 3)), atol=1e-6)
