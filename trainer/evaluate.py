"""Evaluation: test loss/accuracy/top-3, weighted F1, classification report, plots.

``compute_metrics`` is pure (numpy + scikit-learn) so tests compare it with
scikit-learn directly; ``evaluate_model`` predicts a data set and writes
``metrics.json``, ``classification_report.txt``, ``confusion_matrix.png`` and
(from ``history.csv``) ``curves.png``.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, DataError
from edge.folders import make_folder

log = logging.getLogger(__name__)

METRICS_JSON = "metrics.json"
REPORT_TXT = "classification_report.txt"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "curves.png"


def compute_metrics(y_true_int: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict:
    """Loss (cross-entropy), accuracy, top-3 accuracy, weighted/macro F1, report, confusion matrix."""
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    y_true = np.asarray(y_true_int, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    names = list(class_names)
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0] or probs.shape[1] != len(names):
        raise ValueError(f"probs must be (N, {len(names)}) for N={len(y_true)} labels; got {probs.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics of zero samples")
    labels = list(range(len(names)))
    y_pred = probs.argmax(axis=1)
    true_prob = probs[np.arange(len(y_true)), y_true]
    k = min(3, len(names))
    rank = (probs > true_prob[:, None]).sum(axis=1)
    return {
        "num_samples": int(len(y_true)),
        "loss": float(np.mean(-np.log(np.clip(true_prob, 1e-7, 1.0)))),
        "accuracy": float(np.mean(y_pred == y_true)),
        "top3_accuracy": float(np.mean(rank < k)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "classification_report": classification_report(
            y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
        ),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "class_names": names,
    }


def report_text(y_true_int: np.ndarray, probs: np.ndarray, class_names) -> str:
    from sklearn.metrics import classification_report

    return classification_report(
        y_true_int, np.asarray(probs).argmax(axis=1), labels=list(range(len(class_names))),
        target_names=list(class_names), digits=4, zero_division=0,
    )


def plot_confusion_matrix(matrix: list[list[int]], class_names, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(8, 7))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", xticks_rotation=45, colorbar=True
    )
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_curves(history: dict[str, list[float]], path: Path) -> Path | None:
    """Training/validation accuracy and loss per epoch (the seed's two plots)."""
    if not history.get("accuracy") and not history.get("loss"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(e) + 1 for e in history.get("epoch", range(len(history.get("loss", []))))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, label in ((metric, "Training"), (f"val_{metric}", "Validation")):
            if history.get(key):
                ax.plot(epochs[: len(history[key])], history[key], marker="o", label=f"{label} {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"Training and validation {metric}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


@dataclass(frozen=True)
class EvalReport:
    metrics: dict[str, Any]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        m = self.metrics
        return (f"{m.get('split', 'test')} ({m['num_samples']} images): loss {m['loss']:.4f}  "
                f"accuracy {m['accuracy']:.4f}  top-3 {m['top3_accuracy']:.4f}  "
                f"weighted F1 {m['weighted_f1']:.4f}\nreports in {self.out_dir}")


def mean_probabilities(models: Sequence, images, *, flip_average: bool = False, verbose: int = 1) -> np.ndarray:
    """Class probabilities (N, C) of a batched data set of images, averaged over ``models``.

    Several models are an ensemble; ``flip_average`` also averages each
    image with its mirror image (test-time augmentation). Evaluation scores
    this mean and distillation (``trainer.distill``) trains on it.
    """
    import tensorflow as tf

    views = [images, images.map(tf.image.flip_left_right)] if flip_average else [images]
    total = sum(model.predict(view, verbose=verbose).astype(np.float64) for model in models for view in views)
    return (total / (len(models) * len(views))).astype(np.float32)


def predict(model, dataset, *, flip_average: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true_int, probs)`` over a batched (images, labels) data set, in order.

    ``flip_average`` averages each image's probabilities with its mirror
    image's (test-time augmentation): what a flip-averaged model would score,
    at twice the inference cost. ``model`` may be a list of models: an
    ensemble, scored on the mean of their probabilities (what distilling them
    into one student aims at).
    """
    labels = np.concatenate([y.numpy() for _, y in dataset], axis=0)
    members = model if isinstance(model, (list, tuple)) else [model]
    probs = mean_probabilities(members, dataset.map(lambda x, y: x), flip_average=flip_average)
    return labels.argmax(axis=1).astype(np.int64), probs


def evaluate_model(model, dataset, class_names, out_dir: Path, *, history_csv: Path | None = None,
                   split: str = "test", extra: dict[str, Any] | None = None,
                   flip_average: bool = False) -> EvalReport:
    """Predict ``dataset`` and write metrics.json, the report, the confusion matrix and curves.

    ``model``: one model, or a list of models scored as an ensemble (``predict``).
    """
    from trainer.callbacks import read_history

    out_dir = report_folder(out_dir)
    y_true, probs = predict(model, dataset, flip_average=flip_average)
    if flip_average:
        extra = {**(extra or {}), "flip_average": True}
    metrics = {"split": split, **compute_metrics(y_true, probs, class_names), **(extra or {})}
    files = {"metrics": out_dir / METRICS_JSON, "report": out_dir / REPORT_TXT}
    files["report"].write_text(report_text(y_true, probs, class_names), encoding="utf-8")
    files["confusion_matrix"] = plot_confusion_matrix(metrics["confusion_matrix"], class_names,
                                                      out_dir / CONFUSION_PNG)
    if history_csv is not None:
        curves = plot_curves(read_history(history_csv), out_dir / CURVES_PNG)
        if curves is not None:
            files["curves"] = curves
    files["metrics"].write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return EvalReport(metrics, out_dir, files)


def report_folder(out_dir: Path | str) -> Path:
    """``out_dir``, created: a path that cannot be a folder fails here, before any prediction."""
    return make_folder(out_dir, f"the report folder {out_dir}")


def load_model(path: Path):
    """Load a ``.keras`` or ``.h5`` model saved by this project, in float32."""
    import keras

    from trainer import models  # noqa: F401  (registers custom layers)

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file does not exist")
    from trainer.precision import float32_copy

    try:
        model = keras.models.load_model(path, custom_objects=models.custom_objects(), compile=False)
    except (ValueError, OSError) as error:
        if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras then says "File not found"
            raise DataError(f"{path}: not a Keras model (a .keras file is a zip archive; this is not one)") from None
        raise DataError(f"{path}: cannot load the model ({error})") from None
    return float32_copy(model, models.custom_objects())  # a mid-run mixed-precision checkpoint: as exported


def load_checked_model(model_path: Path, cfg, *, role: str = ""):
    """``load_model``, refusing a model whose input or classes differ from the config's.

    The one check for every model a command is given: evaluated, fine-tuned or
    a distillation teacher (``role`` names which in the message).
    """
    model = load_model(model_path)
    shape, outputs = tuple(model.input_shape[1:]), model.output_shape[-1]
    if shape != cfg.data.input_shape or outputs != cfg.data.num_classes:
        fix = [
            *(["data.image_size / data.color_mode"] if shape != cfg.data.input_shape else []),
            *(["data.class_names"] if outputs != cfg.data.num_classes else []),
        ]
        raise ConfigError(
            f"{role + ' ' if role else ''}{model_path} takes {shape} and has {outputs} outputs; the config wants "
            f"{cfg.data.input_shape} and {cfg.data.num_classes} classes {list(cfg.data.class_names)}: set "
            f"{' and '.join(fix)} to match (e.g. --config run_dir/config.yaml)"
        )
    return model


def evaluate(model_path: Path | Sequence[Path], cfg, split: str = "test", out_dir: Path | None = None, *,
             flip_average: bool = False) -> EvalReport:
    """Evaluate a saved model on a split of ``cfg.data``; reports go to ``out_dir``.

    ``model_path`` may name several models: they are scored as an ensemble
    (the mean of their probabilities), for example to see how strong a set of
    distillation teachers is; the default report folder is then
    ``eval_<split>_ensemble`` beside the first. ``flip_average``: score the
    mean of each image's and its mirror image's predictions.
    """
    from trainer.data import load_split, make_dataset

    paths = [Path(model_path)] if isinstance(model_path, (str, Path)) else [Path(path) for path in model_path]
    if not paths:
        raise ConfigError("evaluate needs at least one model")
    models = [load_checked_model(path, cfg) for path in paths]
    data = load_split(cfg.data, split)
    if len(paths) == 1:
        history = paths[0].parent / "history.csv"
        history_csv = history if history.is_file() else None
        folder, extra = f"eval_{split}", {"model": str(paths[0])}
    else:
        history_csv = None
        folder, extra = f"eval_{split}_ensemble", {"models": [str(path) for path in paths]}
    out_dir = Path(out_dir) if out_dir is not None else paths[0].parent / folder
    return evaluate_model(models, make_dataset(data, cfg, training=False), cfg.data.class_names, out_dir,
                          history_csv=history_csv, split=split, extra=extra, flip_average=flip_average)
