"""trainer.norms: normalisations get real statistics, the model keeps its function."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from trainer.config import TrainConfig
from trainer.models import build_model
from trainer.norms import calibrate_norms


def identity_normalised_vgg(seed: int = 0):
    """A tiny vgg whose normalisations are identities, as a model rebuilt from a TFLite file has."""
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8, "dropout_rate": 0.0},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    keras.utils.set_random_seed(seed)
    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            offset = np.random.default_rng(seed).normal(size=channels).astype(np.float32)
            layer.set_weights([np.ones(channels, np.float32), offset, np.zeros(channels, np.float32),
                               np.full(channels, 1 - layer.epsilon, np.float32)])
    return model


def test_calibration_keeps_inference_and_brings_training_mode_to_it():
    model = identity_normalised_vgg()
    images = np.random.default_rng(1).uniform(0, 255, (64, 16, 16, 1)).astype(np.float32)
    before = model.predict(images, verbose=0)
    # a training-mode call moves the statistics: measure it on a copy
    training_before = keras.ops.convert_to_numpy(identity_normalised_vgg()(images, training=True))

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert calibrate_norms(model, images, batch_size=16) == len(norms) == 9  # 8 convolutions' and the dense one's

    after = model.predict(images, verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-5)
    training_after = keras.ops.convert_to_numpy(model(images, training=True))
    gap_before = np.abs(training_before - before).max()
    gap_after = np.abs(training_after - before).max()
    assert gap_after < 1e-3 < gap_before  # the batch statistics are now the data's, not unit ones


def test_the_moving_statistics_are_those_of_each_layers_inputs():
    model = identity_normalised_vgg()
    images = np.random.default_rng(2).uniform(0, 255, (32, 16, 16, 1)).astype(np.float32)
    calibrate_norms(model, images)
    first = model.get_layer("block1_1_bn")
    inputs = keras.Model(model.inputs, model.get_layer("block1_1_conv").output).predict(images, verbose=0)
    np.testing.assert_allclose(first.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), inputs.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)


def test_no_images_is_refused():
    with pytest.raises(ValueError, match="at least one image"):
        calibrate_norms(identity_normalised_vgg(), np.zeros((0, 16, 16, 1), np.float32))
