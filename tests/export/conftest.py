"""Session fixtures for the export tests: generated class folders and a tiny trained CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_testdata import build_tiny_model, make_images, write_class_folders


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/``, ``val/`` and ``test/`` class folders of generated images."""
    root = tmp_path_factory.mktemp("data")
    write_class_folders(root / "train", *make_images(60, seed=1))
    write_class_folders(root / "val", *make_images(5, seed=3))
    write_class_folders(root / "test", *make_images(30, seed=2, label_noise=0.1))
    return root


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run/model.keras``: the tiny CNN trained to high accuracy on generated images."""
    import keras

    keras.utils.set_random_seed(0)
    images, labels = make_images(60, seed=1)
    model = build_tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images.astype(np.float32), labels, epochs=25, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("run") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def untrained_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same architecture with fresh random weights: a 'damaged' model for gate tests."""
    import keras

    keras.utils.set_random_seed(123)
    path = tmp_path_factory.mktemp("untrained") / "model.keras"
    build_tiny_model().save(path)
    return path


@pytest.fixture(scope="session")
def fast_options():
    """Options for tests: the generated folders, few latency runs."""
    from export.options import ExportOptions

    def make(dataset: Path, **overrides) -> ExportOptions:
        values = dict(test_dir=dataset / "test", representative_dir=dataset / "train",
                      representative_count=100, latency_runs=20, warmup_runs=2, num_threads=1)
        values.update(overrides)
        return ExportOptions(**values)

    return make


@pytest.fixture(scope="session")
def full_export(tmp_path_factory, model_path, dataset_dir, fast_options):
    """All four variants of the tiny model, exported once for many tests."""
    from export.api import export_model

    out_dir = tmp_path_factory.mktemp("exports") / "full"
    return export_model(model_path, out_dir, fast_options(dataset_dir))
