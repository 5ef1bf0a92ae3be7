"""The export report: every variant's numbers next to the Keras model's, as JSON and a table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.benchreport import describe_cpu
from export.gate import ExportGate, GateFailure, accuracy_drop_pp
from export.verify import ClassificationMetrics, VerifyReport

REPORT_JSON = "report.json"
REPORT_MD = "report.md"

_COLUMNS = (
    ("variant", "<"), ("size", ">"), ("accuracy", ">"), ("drop pp", ">"), ("top-3", ">"),
    ("F1 (w)", ">"), ("agreement", ">"), ("max |dp|", ">"), ("latency ms", ">"), ("gate", "<"),
)


def format_size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} B"
    if size_bytes < 1024**2:
        return f"{size_bytes / 1024:.1f} KiB"
    return f"{size_bytes / 1024**2:.2f} MiB"


@dataclass(frozen=True, kw_only=True)
class ExportReport:
    """What an export measured: the Keras reference, each variant, and the gate's verdict."""

    model_path: str
    model_size_bytes: int
    source_model_sha256: str
    test_source: str
    test_images: int
    representative_images: int
    keras: ClassificationMetrics
    variants: tuple[VerifyReport, ...]
    gate: ExportGate
    failures: tuple[GateFailure, ...]
    machine: dict[str, Any]  # edge.benchreport.machine_info(): where the latencies were measured

    @property
    def passed(self) -> bool:
        return not self.failures

    def variant(self, name: str) -> VerifyReport:
        for report in self.variants:
            if report.variant == name:
                return report
        raise KeyError(f"no variant {name!r} in the report; have {[r.variant for r in self.variants]}")

    def accuracy_drop_pp(self, name: str) -> float:
        return accuracy_drop_pp(self.keras, self.variant(name))

    def to_dict(self) -> dict[str, object]:
        failed = {f.variant for f in self.failures}
        return {
            "model_path": self.model_path,
            "model_size_bytes": self.model_size_bytes,
            "source_model_sha256": self.source_model_sha256,
            "test_source": self.test_source,
            "test_images": self.test_images,
            "representative_images": self.representative_images,
            "machine": dict(self.machine),
            "keras": asdict(self.keras),
            "variants": {
                r.variant: {
                    **r.to_dict(),
                    "accuracy_drop_pp": accuracy_drop_pp(self.keras, r),
                    "passed": r.variant not in failed,
                }
                for r in self.variants
            },
            "gate": {
                **asdict(self.gate),
                "passed": self.passed,
                "failures": [asdict(f) for f in self.failures],
            },
        }

    def save(self, directory: Path) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.md`` into ``directory``."""
        json_path = Path(directory) / REPORT_JSON
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        md_path = Path(directory) / REPORT_MD
        md_path.write_text(self.to_markdown() + "\n", encoding="utf-8")
        return json_path, md_path

    def table(self) -> str:
        """A Markdown table, aligned so it also reads well in a terminal."""
        failed = {f.variant for f in self.failures}
        keras = self.keras
        rows = [(
            "keras", format_size(self.model_size_bytes), f"{keras.accuracy:.2%}", "-",
            f"{keras.top3_accuracy:.2%}", f"{keras.weighted_f1:.4f}", "-", "-", "-", "reference",
        )]
        for r in self.variants:
            rows.append((
                r.variant, format_size(r.size_bytes), f"{r.metrics.accuracy:.2%}",
                f"{accuracy_drop_pp(keras, r):+.2f}", f"{r.metrics.top3_accuracy:.2%}",
                f"{r.metrics.weighted_f1:.4f}", f"{r.agreement:.2%}", f"{r.max_abs_diff:.4f}",
                f"{r.latency_ms:.3f}", "FAIL" if r.variant in failed else "pass",
            ))
        headers = tuple(name for name, _ in _COLUMNS)
        widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]

        def line(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(
                f"{cell:{align}{width}}" for cell, (_, align), width in zip(cells, _COLUMNS, widths)
            ) + " |"

        rule = "|" + "|".join(
            "-" * (width + 1) + (":" if align == ">" else "-") for (_, align), width in zip(_COLUMNS, widths)
        ) + "|"
        return "\n".join([line(headers), rule, *(line(row) for row in rows)])

    def verdict(self) -> str:
        gate = (
            f"gate: accuracy drop <= {self.gate.max_accuracy_drop:.2f} pp and agreement >= "
            f"{self.gate.min_agreement:.2%} vs Keras"
        )
        if self.passed:
            return f"{gate}: passed by every variant"
        return "\n".join([f"{gate}: FAILED", *(f"  - {failure}" for failure in self.failures)])

    def to_markdown(self) -> str:
        return "\n".join([
            "# Export report",
            "",
            f"- model: `{self.model_path}` (sha256 `{self.source_model_sha256[:16]}...`)",
            f"- test set: {self.test_images} images from {self.test_source}",
            f"- int8 calibration: {self.representative_images} representative images",
            "- latency: median per image, batch 1, after warm-up, through edge.classifier, on "
            f"{describe_cpu(self.machine)} ({self.machine['usable_cores']} usable cores)",
            "",
            self.table(),
            "",
            self.verdict(),
        ])
