from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score, classification_report, confusion_matrix, f1_score, log_loss, top_k_accuracy_score,
)

from trainer.evaluate import compute_metrics, plot_confusion_matrix, plot_curves

NAMES = ("anger", "happy", "sad", "surprise")


def known_predictions():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 4, 50)
    logits = rng.normal(size=(50, 4)) + 2.0 * np.eye(4)[y_true] * (rng.uniform(size=(50, 1)) > 0.3)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y_true, probs


def test_metrics_equal_sklearn():
    y_true, probs = known_predictions()
    y_pred = probs.argmax(1)
    metrics = compute_metrics(y_true, probs, NAMES)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert metrics["top3_accuracy"] == pytest.approx(top_k_accuracy_score(y_true, probs, k=3, labels=range(4)))
    assert metrics["loss"] == pytest.approx(log_loss(y_true, probs, labels=range(4)), rel=1e-6)
    assert metrics["confusion_matrix"] == confusion_matrix(y_true, y_pred).tolist()
    expected = classification_report(y_true, y_pred, target_names=list(NAMES), output_dict=True)
    report = metrics["classification_report"]
    assert set(report) == set(expected)
    for name in NAMES:
        for key in ("precision", "recall", "f1-score", "support"):
            assert report[name][key] == pytest.approx(expected[name][key])
    json.dumps(metrics)  # serialisable


def test_missing_class_in_test_set():
    y_true = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.05, 0.03, 0.02], [0.2, 0.7, 0.05, 0.05], [0.6, 0.3, 0.05, 0.05]])
    metrics = compute_metrics(y_true, probs, NAMES)
    assert metrics["classification_report"]["sad"]["support"] == 0
    assert len(metrics["confusion_matrix"]) == 4
    assert metrics["accuracy"] == pytest.approx(1 / 3)  # predictions 0, 1, 0


def test_bad_shapes():
    with pytest.raises(ValueError, match="probs"):
        compute_metrics(np.array([0, 1]), np.ones((2, 3)), NAMES)


def test_plots(tmp_path):
    y_true, probs = known_predictions()
    matrix = compute_metrics(y_true, probs, NAMES)["confusion_matrix"]
    assert plot_confusion_matrix(matrix, NAMES, tmp_path / "cm.png").stat().st_size > 1000
    history = {"epoch": [0, 1], "accuracy": [0.3, 0.5], "val_accuracy": [0.2, 0.4], "loss": [2, 1],
               "val_loss": [2.1, 1.5]}
    assert plot_curves(history, tmp_path / "curves.png").stat().st_size > 1000
    assert plot_curves({}, tmp_path / "none.png") is None


def test_a_report_folder_that_cannot_be_made_is_one_clear_error(tmp_path):
    from edge.errors import SinkError
    from trainer.evaluate import report_folder

    (tmp_path / "a_file").write_text("x")
    for path in (tmp_path / "a_file", tmp_path / "a_file" / "eval"):
        with pytest.raises(SinkError, match=f"cannot write the report folder {path}: {tmp_path / 'a_file'} is a file"):
            report_folder(path)
    assert report_folder(tmp_path / "new" / "eval").is_dir()


def test_a_file_that_is_not_a_keras_archive_says_so(tmp_path):
    from edge.errors import DataError
    from trainer.evaluate import load_model

    junk = tmp_path / "model.keras"
    junk.write_text("not a model")
    with pytest.raises(DataError, match=r"model.keras: not a Keras model \(a .keras file is a zip archive"):
        load_model(junk)


def test_a_model_that_does_not_fit_the_config_names_the_settings_to_change(tmp_path):
    import keras

    from edge.errors import ConfigError
    from trainer.config import TrainConfig
    from trainer.evaluate import load_checked_model

    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.save(tmp_path / "m.keras")
    cfg = TrainConfig().replace({"data.image_size": 16, "data.color_mode": "grayscale"})
    with pytest.raises(ConfigError, match=r"set data.class_names to match"):
        load_checked_model(tmp_path / "m.keras", cfg)
    with pytest.raises(ConfigError, match=r"set data.image_size / data.color_mode and data.class_names to match"):
        load_checked_model(tmp_path / "m.keras", cfg.replace({"data.image_size": 32}))
