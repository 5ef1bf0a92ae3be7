from __future__ import annotations

import json

import pytest

from export.gate import ExportGate
from export.report import ExportReport, format_size
from export.verify import ClassificationMetrics, VerifyReport

KERAS = ClassificationMetrics(accuracy=0.9, top3_accuracy=0.99, weighted_f1=0.89)


def variant(name: str, accuracy: float, agreement: float) -> VerifyReport:
    return VerifyReport(
        variant=name, file=f"model_{name}.tflite", size_bytes=2048,
        metrics=ClassificationMetrics(accuracy=accuracy, top3_accuracy=0.98, weighted_f1=0.85),
        agreement=agreement, max_abs_diff=0.0312, latency_ms=0.25,
    )


def make_report(*variants: VerifyReport) -> ExportReport:
    gate = ExportGate()
    failures = tuple(f for v in variants for f in gate.check(KERAS, v))
    return ExportReport(
        model_path="run/model.keras", model_size_bytes=3 * 1024**2, source_model_sha256="ab" * 32,
        test_source="data/test", test_images=200, representative_images=300, keras=KERAS,
        variants=variants, gate=gate, failures=failures,
        machine={"cpu_model": "EPYC", "cpu_id": "family 25", "cpu_features": ["avx512f"], "usable_cores": 2},
    )


@pytest.mark.parametrize(("size", "text"), [(512, "512 B"), (2048, "2.0 KiB"), (3 * 1024**2, "3.00 MiB")])
def test_format_size(size, text):
    assert format_size(size) == text


def test_table_has_a_row_per_model_and_marks_failures():
    report = make_report(variant("float32", 0.9, 1.0), variant("int8", 0.85, 0.95))
    lines = report.table().splitlines()
    assert lines[0].startswith("| variant ") and "latency ms" in lines[0]
    assert len(lines) == 2 + 3
    assert lines[2].split("|")[1].strip() == "keras" and "3.00 MiB" in lines[2]
    float32 = [cell.strip() for cell in lines[3].split("|")[1:-1]]
    assert float32 == ["float32", "2.0 KiB", "90.00%", "+0.00", "98.00%", "0.8500", "100.00%",
                       "0.0312", "0.250", "pass"]
    assert lines[4].split("|")[1].strip() == "int8" and lines[4].rstrip(" |").endswith("FAIL")
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_verdict_lists_each_failure():
    report = make_report(variant("float32", 0.9, 1.0), variant("int8", 0.85, 0.95))
    assert not report.passed
    verdict = report.verdict()
    assert "FAILED" in verdict and verdict.count("  - int8:") == 2
    assert "passed by every variant" in make_report(variant("float32", 0.9, 1.0)).verdict()


def test_saved_json_and_markdown(tmp_path):
    report = make_report(variant("dynamic", 0.895, 0.99))
    json_path, md_path = report.save(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["keras"] == {"accuracy": 0.9, "top3_accuracy": 0.99, "weighted_f1": 0.89}
    assert data["variants"]["dynamic"]["accuracy_drop_pp"] == pytest.approx(0.5)
    assert data["variants"]["dynamic"]["passed"] is True
    assert data["gate"] == {"max_accuracy_drop": 1.0, "min_agreement": 0.98, "passed": True, "failures": []}
    markdown = md_path.read_text()
    assert markdown.startswith("# Export report") and report.table() in markdown
    assert "200 images from data/test" in markdown
    assert "through edge.classifier, on EPYC (family 25; avx512f) (2 usable cores)" in markdown
    assert data["machine"]["cpu_features"] == ["avx512f"]


def test_unknown_variant_lookup_lists_the_known_ones():
    with pytest.raises(KeyError, match="dynamic"):
        make_report(variant("dynamic", 0.9, 1.0)).variant("int8")
