"""Measure an exported variant against the Keras model on a labelled test set.

Inference goes through ``edge.classifier.EmotionClassifier``, the runtime's own
code, so what is measured here is what runs live. The metric functions are
pure numpy/scikit-learn and TensorFlow-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import f1_score, top_k_accuracy_score

from edge.classifier import EmotionClassifier

PREDICT_BATCH_SIZE = 256


@dataclass(frozen=True, kw_only=True)
class ClassificationMetrics:
    """Accuracy, top-3 accuracy and support-weighted F1 of probabilities against labels."""

    accuracy: float
    top3_accuracy: float
    weighted_f1: float

    @classmethod
    def from_probabilities(cls, labels: np.ndarray, probabilities: np.ndarray) -> ClassificationMetrics:
        labels = np.asarray(labels)
        probabilities = np.asarray(probabilities, np.float64)
        num_classes = probabilities.shape[1]
        predicted = probabilities.argmax(axis=1)
        classes = np.arange(num_classes)
        return cls(
            accuracy=float(np.mean(predicted == labels)),
            top3_accuracy=top_k_accuracy(labels, probabilities, k=3),
            weighted_f1=float(
                f1_score(labels, predicted, labels=classes, average="weighted", zero_division=0)
            ),
        )


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    """What was measured on one variant; fractions in [0, 1], probabilities' max difference."""

    variant: str
    file: str
    size_bytes: int
    metrics: ClassificationMetrics
    agreement: float  # fraction of images whose top-1 equals the Keras model's
    max_abs_diff: float  # largest |p_variant - p_keras| over all images and classes
    latency_ms: float  # median per-image latency, batch 1, after warm-up

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` most probable classes (sklearn's
    definition, ties included); 1.0 when there are no more than ``k`` classes."""
    num_classes = np.asarray(probabilities).shape[1]
    if num_classes <= k:
        return 1.0
    return float(top_k_accuracy_score(labels, probabilities, k=k, labels=np.arange(num_classes)))


def top1_agreement(probabilities: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the reference's argmax."""
    return float(np.mean(np.argmax(probabilities, axis=1) == np.argmax(reference, axis=1)))


def max_abs_diff(probabilities: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(probabilities, np.float64) - reference)))


def predict_in_batches(
    classifier: EmotionClassifier, images: np.ndarray, batch_size: int = PREDICT_BATCH_SIZE
) -> np.ndarray:
    return np.concatenate(
        [classifier.predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )


def measure_latency_ms(
    predict: Callable[[np.ndarray], object], images: np.ndarray, *, runs: int, warmup_runs: int
) -> float:
    """Median wall time of ``predict`` on one image (batch 1), cycling through ``images``."""
    for i in range(warmup_runs):
        predict(images[i % len(images)][np.newaxis])
    timings = np.empty(runs)
    for i in range(runs):
        batch = images[i % len(images)][np.newaxis]
        start = time.perf_counter()
        predict(batch)
        timings[i] = time.perf_counter() - start
    return float(np.median(timings) * 1000.0)


def verify_tflite(
    classifier: EmotionClassifier,
    images: np.ndarray,
    labels: np.ndarray,
    reference_probabilities: np.ndarray,
    *,
    latency_runs: int = 200,
    warmup_runs: int = 10,
) -> VerifyReport:
    """Metrics of ``classifier``'s variant, its agreement with the reference, and its latency."""
    probabilities = predict_in_batches(classifier, images)
    latency_ms = measure_latency_ms(
        classifier.predict, images, runs=latency_runs, warmup_runs=warmup_runs
    )
    return VerifyReport(
        variant=classifier.variant.quantization,
        file=classifier.variant.file,
        size_bytes=int(classifier.model_path.stat().st_size),
        metrics=ClassificationMetrics.from_probabilities(labels, probabilities),
        agreement=top1_agreement(probabilities, reference_probabilities),
        max_abs_diff=max_abs_diff(probabilities, reference_probabilities),
        latency_ms=latency_ms,
    )
