"""The export gate: how much a variant may differ from the Keras model it came from."""

from __future__ import annotations

from dataclasses import dataclass

from export.verify import ClassificationMetrics, VerifyReport

_EPSILON = 1e-9  # float slack so that exactly-at-threshold passes


@dataclass(frozen=True, kw_only=True)
class GateFailure:
    """One variant failing one criterion, with the numbers that made it fail."""

    variant: str
    criterion: str  # "accuracy_drop" | "agreement"
    value: float
    threshold: float
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, kw_only=True)
class ExportGate:
    """Fails a variant whose accuracy drops more than ``max_accuracy_drop`` percentage
    points below Keras, or whose top-1 agrees with Keras on fewer than ``min_agreement``
    of the test images."""

    max_accuracy_drop: float = 1.0
    min_agreement: float = 0.98

    def check(self, keras: ClassificationMetrics, report: VerifyReport) -> tuple[GateFailure, ...]:
        failures = []
        drop = accuracy_drop_pp(keras, report)
        if drop > self.max_accuracy_drop + _EPSILON:
            failures.append(GateFailure(
                variant=report.variant,
                criterion="accuracy_drop",
                value=drop,
                threshold=self.max_accuracy_drop,
                message=(
                    f"{report.variant}: accuracy {report.metrics.accuracy:.2%} is {drop:.2f} "
                    f"percentage points below Keras {keras.accuracy:.2%} "
                    f"(allowed drop {self.max_accuracy_drop:.2f}; exceeded by "
                    f"{drop - self.max_accuracy_drop:.2f})"
                ),
            ))
        if report.agreement < self.min_agreement - _EPSILON:
            failures.append(GateFailure(
                variant=report.variant,
                criterion="agreement",
                value=report.agreement,
                threshold=self.min_agreement,
                message=(
                    f"{report.variant}: top-1 agrees with Keras on {report.agreement:.2%} of test "
                    f"images (minimum {self.min_agreement:.2%}; short by "
                    f"{(self.min_agreement - report.agreement) * 100:.2f} percentage points)"
                ),
            ))
        return tuple(failures)


def accuracy_drop_pp(keras: ClassificationMetrics, report: VerifyReport) -> float:
    """Keras accuracy minus the variant's, in percentage points (negative = the variant is better)."""
    return (keras.accuracy - report.metrics.accuracy) * 100.0
