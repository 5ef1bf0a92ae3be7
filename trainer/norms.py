"""Give a model's batch normalisations the statistics of real data, keeping its function.

A model rebuilt from a TFLite export (``tools/rebuild_keras.py``) has identity
normalisations: the converter folded them into the layers before. At inference
that is the same function, but a fine-tune runs them in training mode, where
each normalises by its batch's own statistics: activations that were never unit
variance suddenly are, and the first epoch undoes what the network knew (a split
shipped model fell from 85.9% to 78.1% on Valid after one epoch). Setting each
layer's moving mean and variance to those of its inputs on real images, and its
scale and offset so that the inference-mode output is unchanged, makes training
mode compute about what inference does, so a fine-tune starts where the model is.
"""

from __future__ import annotations

import numpy as np


def batch_norms(model) -> list:
    """Every BatchNormalization layer of ``model``, nested models included."""
    import keras

    from trainer.precision import all_layers

    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def calibrate_norms(model, images: np.ndarray, batch_size: int = 256) -> int:
    """Set every BatchNormalization layer's statistics from ``images``; returns how many layers.

    Each layer's input is measured in inference mode (the function the model
    has), in one pass over ``images`` (a batch of model inputs). For a layer
    that computed ``a * x + c`` per channel, the new moving mean ``m`` and
    variance ``v`` come with scale ``a * sqrt(v + eps)`` and offset
    ``c + a * m``, so its inference output stays ``a * x + c`` (to rounding).
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    if len(images) == 0:
        raise ValueError("calibrate_norms needs at least one image")
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for layer, inputs in zip(norms, outputs):
        if not (layer.center and layer.scale):
            raise ValueError(f"{layer.name} has no scale or offset to keep its function with")
        channels = np.asarray(inputs, np.float64).reshape(-1, inputs.shape[-1])
        mean, variance = channels.mean(axis=0), channels.var(axis=0)
        gamma, beta, moving_mean, moving_variance = (np.asarray(w, np.float64) for w in layer.get_weights())
        slope = gamma / np.sqrt(moving_variance + layer.epsilon)
        intercept = beta - moving_mean * slope
        layer.set_weights([
            (slope * np.sqrt(variance + layer.epsilon)).astype(np.float32),
            (intercept + slope * mean).astype(np.float32),
            mean.astype(np.float32),
            variance.astype(np.float32),
        ])
    return len(norms)
