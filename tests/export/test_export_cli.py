"""`ers export` wiring and exit codes, through the real lazy `ers` group."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import export.api
from edge.cli import cli
from export.options import Quantization


@pytest.fixture
def invoke(dataset_dir, model_path):
    def run(out_dir, *extra: str):
        args = ["export", str(model_path), "--out-dir", str(out_dir), "--test-dir", str(dataset_dir / "test"),
                "--representative-dir", str(dataset_dir / "train"), "--representative-count", "50",
                "--threads", "1", *extra]
        return CliRunner().invoke(cli, args)

    return run


def test_export_prints_the_table_and_the_next_command(invoke, tmp_path):
    result = invoke(tmp_path / "out", "--variants", "float32,int8", "--crop-scale", "1.25",
                    "--crop-shift-y", "0.1")
    assert result.exit_code == 0, result.output
    assert "| variant " in result.output and "| int8 " in result.output
    assert "passed by every variant" in result.output
    assert f"ers run 0 --model-dir {tmp_path / 'out'}" in result.output
    from edge.model_spec import CropSpec, ModelSpec

    spec = ModelSpec.load(tmp_path / "out")
    assert list(spec.variants) == ["float32", "int8"]
    assert spec.crop == CropSpec(scale=1.25, shift_y=0.1)


@pytest.mark.parametrize(("flag", "input_dtype"), [(None, "float32"), ("--int8-first-conv", "int8")])
def test_the_int8_first_convolution_is_float_unless_asked(invoke, tmp_path, flag, input_dtype):
    from edge.model_spec import ModelSpec

    result = invoke(tmp_path / "out", "--variants", "int8", *([flag] if flag else []))
    assert result.exit_code == 0, result.output
    assert ModelSpec.load(tmp_path / "out").variants["int8"].input.dtype == input_dtype


def test_existing_folder_needs_force(invoke, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("an earlier export's")
    refused = invoke(out, "--variants", "float32")
    assert refused.exit_code == 1
    assert "already exists and is not empty; pass --force" in refused.output
    assert "Traceback" not in refused.output
    assert invoke(out, "--variants", "float32", "--force").exit_code == 0


def test_force_refuses_a_folder_that_is_not_an_export(invoke, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    refused = invoke(out, "--variants", "float32", "--force")
    assert refused.exit_code == 1
    assert "holds old.txt, which no export writes" in refused.output
    assert "Traceback" not in refused.output
    assert (out / "old.txt").read_text() == "x"


def test_gate_failure_exits_1_naming_variant_and_amount(invoke, tmp_path, monkeypatch, untrained_model_path):
    import keras

    from export.convert import convert_to_tflite, save_saved_model

    damaged = save_saved_model(keras.models.load_model(untrained_model_path, compile=False), tmp_path / "sm")

    def convert(saved_model_dir, quantization, representative_images=None, **options):
        source = damaged if Quantization(quantization) is Quantization.INT8 else saved_model_dir
        return convert_to_tflite(source, quantization, representative_images, **options)

    monkeypatch.setattr(export.api, "convert_to_tflite", convert)
    result = invoke(tmp_path / "out", "--variants", "float32,int8")
    assert result.exit_code == 1
    assert "| int8 " in result.output and "FAIL" in result.output  # the table is printed first
    assert "Error: export gate failed for int8:" in result.output
    assert "percentage points below Keras" in result.output
    assert "ers run" not in result.output
    assert (tmp_path / "out" / "report.md").is_file()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (("--variants", "float32,int4"), "unknown variant 'int4'"),
        (("--variants", ","), "name at least one of"),
        (("--min-agreement", "1.5"), "--min-agreement"),
        (("--max-accuracy-drop", "-1"), "--max-accuracy-drop"),
        (("--representative-count", "0"), "--representative-count"),
    ],
)
def test_bad_flags_are_usage_errors(invoke, tmp_path, extra, match):
    result = invoke(tmp_path / "out", *extra)
    assert result.exit_code == 2 and match in result.output
    assert not (tmp_path / "out").exists()


def test_domain_errors_are_one_line_messages(invoke, tmp_path):
    result = invoke(tmp_path / "out", "--crop-scale", "9")
    assert result.exit_code == 1 and "crop.scale must be in [0.2, 5.0]; got 9.0" in result.output
    assert "Traceback" not in result.output


def test_missing_model_path_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "nope.keras"), "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_help_lists_the_options():
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--out-dir", "--config", "--test-dir", "--variants", "--representative-count",
                   "--test-limit", "--max-accuracy-drop", "--min-agreement", "--crop-scale",
                   "--crop-shift-y", "--force", "--threads"):
        assert option in result.output
