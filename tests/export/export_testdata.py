"""Generated images and a tiny Keras CNN for the export tests (no trainer, no data set).

The images are 16x16 grayscale with one clearly visible shape per class, so a
CNN with a few hundred weights learns them in seconds and accuracy means
something. Imported by ``conftest.py`` and by tests as ``export_testdata``
(a unique name: every tests/ folder has its own ``conftest``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = 16
CLASS_NAMES = ("angry", "happy", "neutral", "sad")


def make_images(
    count_per_class: int, seed: int, size: int = SIZE, label_noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size, 1) images and int64 labels; one shape per class on a noisy background.

    ``label_noise`` relabels that fraction of images to another class: the model
    still predicts confidently (so variants agree with Keras) but accuracy, top-3
    and F1 fall below 1 and the comparisons in the tests mean something.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(CLASS_NAMES)):
        for _ in range(count_per_class):
            image = rng.integers(0, 60, (size, size), dtype=np.uint8)
            value = int(rng.integers(190, 256))
            start = int(rng.integers(2, size - 5))
            if label == 0:  # horizontal bar
                image[start : start + 3, 2:-2] = value
            elif label == 1:  # vertical bar
                image[2:-2, start : start + 3] = value
            elif label == 2:  # hollow square
                cv2.rectangle(image, (3, 3), (size - 4, size - 4), value, 2)
            else:  # diagonal
                cv2.line(image, (1, 1), (size - 2, size - 2), value, 2)
            images.append(image[..., np.newaxis])
            labels.append(label)
    labels = np.array(labels, np.int64)
    flip = rng.random(len(labels)) < label_noise
    labels[flip] = (labels[flip] + rng.integers(1, len(CLASS_NAMES), flip.sum())) % len(CLASS_NAMES)
    return np.stack(images), labels


def write_class_folders(directory: Path, images: np.ndarray, labels: np.ndarray,
                        class_names: tuple[str, ...] = CLASS_NAMES) -> Path:
    """Write ``directory/<label>/<index>.png`` and return ``directory``."""
    for name in class_names:
        (directory / name).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        cv2.imwrite(str(directory / class_names[label] / f"{index:04d}.png"), image)
    return directory


def build_tiny_model(num_classes: int = len(CLASS_NAMES), size: int = SIZE, channels: int = 1):
    import keras

    inputs = keras.Input((size, size, channels))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
