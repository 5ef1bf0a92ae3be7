from __future__ import annotations

import numpy as np
import pytest

from export.verify import (
    ClassificationMetrics,
    max_abs_diff,
    measure_latency_ms,
    top1_agreement,
    top_k_accuracy,
)

PROBS = np.array([
    [0.7, 0.15, 0.1, 0.05],
    [0.05, 0.6, 0.2, 0.15],
    [0.1, 0.2, 0.3, 0.4],
    [0.4, 0.3, 0.2, 0.1],
])


@pytest.mark.parametrize(
    ("labels", "accuracy", "top3"),
    [
        ([0, 1, 3, 0], 1.0, 1.0),
        ([1, 1, 3, 0], 0.75, 1.0),
        ([3, 0, 0, 3], 0.0, 0.0),  # every label is the least probable class
    ],
)
def test_classification_metrics(labels, accuracy, top3):
    metrics = ClassificationMetrics.from_probabilities(np.array(labels), PROBS)
    assert metrics.accuracy == pytest.approx(accuracy)
    assert metrics.top3_accuracy == pytest.approx(top3)
    assert 0.0 <= metrics.weighted_f1 <= 1.0


def test_weighted_f1_matches_a_hand_computation():
    # predictions [0, 1, 3, 0]; labels [0, 1, 3, 3]: class 0 P=1/2 R=1 F=2/3 (support 1),
    # class 1 F=1 (1), class 3 P=1 R=1/2 F=2/3 (2) -> weighted (2/3 + 1 + 4/3) / 4 = 0.75
    metrics = ClassificationMetrics.from_probabilities(np.array([0, 1, 3, 3]), PROBS)
    assert metrics.weighted_f1 == pytest.approx(0.75)


def test_top_k_is_perfect_with_k_or_fewer_classes():
    probs = np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])
    assert top_k_accuracy(np.array([0, 2]), probs, k=3) == 1.0


@pytest.mark.parametrize(
    ("other", "agreement", "diff"),
    [
        (PROBS, 1.0, 0.0),
        (PROBS[:, ::-1], 0.0, 0.65),
        (np.array([[0.6, 0.2, 0.1, 0.1], [0.05, 0.6, 0.2, 0.15], [0.4, 0.2, 0.3, 0.1], [0.4, 0.3, 0.2, 0.1]]),
         0.75, 0.3),
    ],
)
def test_agreement_and_max_abs_diff(other, agreement, diff):
    assert top1_agreement(other, PROBS) == pytest.approx(agreement)
    assert max_abs_diff(other, PROBS) == pytest.approx(diff)


def test_latency_is_the_median_of_batch_one_calls_after_warm_up():
    shapes = []
    latency = measure_latency_ms(lambda batch: shapes.append(batch.shape), np.zeros((3, 8, 8, 1)),
                                 runs=7, warmup_runs=2)
    assert len(shapes) == 9 and set(shapes) == {(1, 8, 8, 1)}
    assert 0.0 <= latency < 50.0
