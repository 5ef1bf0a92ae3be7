from __future__ import annotations

import pytest

from export.gate import ExportGate, accuracy_drop_pp
from export.verify import ClassificationMetrics, VerifyReport

KERAS = ClassificationMetrics(accuracy=0.90, top3_accuracy=0.99, weighted_f1=0.9)


def variant(accuracy: float, agreement: float, name: str = "int8") -> VerifyReport:
    return VerifyReport(
        variant=name, file=f"model_{name}.tflite", size_bytes=1000,
        metrics=ClassificationMetrics(accuracy=accuracy, top3_accuracy=0.99, weighted_f1=0.9),
        agreement=agreement, max_abs_diff=0.01, latency_ms=0.1,
    )


@pytest.mark.parametrize(
    ("accuracy", "agreement", "criteria"),
    [
        (0.90, 1.00, []),
        (0.91, 0.99, []),  # better than Keras is fine
        (0.89, 0.98, []),  # exactly at both thresholds passes
        (0.8899, 0.98, ["accuracy_drop"]),
        (0.90, 0.9799, ["agreement"]),
        (0.50, 0.40, ["accuracy_drop", "agreement"]),
    ],
)
def test_gate_thresholds(accuracy, agreement, criteria):
    failures = ExportGate(max_accuracy_drop=1.0, min_agreement=0.98).check(KERAS, variant(accuracy, agreement))
    assert [f.criterion for f in failures] == criteria


def test_failure_messages_name_variant_and_amount():
    failures = ExportGate().check(KERAS, variant(0.85, 0.90, name="dynamic"))
    accuracy, agreement = failures
    assert accuracy.variant == "dynamic"
    assert accuracy.value == pytest.approx(5.0)
    assert "dynamic: accuracy 85.00% is 5.00 percentage points below Keras 90.00%" in str(accuracy)
    assert "exceeded by 4.00" in str(accuracy)
    assert "dynamic: top-1 agrees with Keras on 90.00%" in str(agreement)
    assert "minimum 98.00%; short by 8.00 percentage points" in str(agreement)


def test_accuracy_drop_is_in_percentage_points():
    assert accuracy_drop_pp(KERAS, variant(0.875, 1.0)) == pytest.approx(2.5)
    assert accuracy_drop_pp(KERAS, variant(0.95, 1.0)) == pytest.approx(-5.0)
