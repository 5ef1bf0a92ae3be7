"""tools/layer_times.py: a model's int8 time cut after each stage, and what each stage adds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from export_testdata import build_tiny_model

from tool_scripts import loaded_tool

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("layer_times") as module:
        yield module


def test_cuts_end_at_activations_poolings_and_dense_layers(tool):
    model = build_tiny_model()
    kinds = [type(model.get_layer(name)).__name__ for name in tool.stage_ends(model)]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "GlobalAveragePooling2D", "Dense"]


@pytest.mark.parametrize(("float_first_conv", "first_cut_input"), [(True, "float32"), (False, "int8")])
def test_the_first_cut_runs_the_image_convolution_as_the_whole_model_does(
    tool, model_path: Path, tmp_path: Path, float_first_conv, first_cut_input
):
    from ai_edge_litert.interpreter import Interpreter

    model = keras.models.load_model(model_path, compile=False)
    names = tool.stage_ends(model)[:2]
    paths = tool.cut_files(model, names, tmp_path, float_first_conv=float_first_conv)
    inputs = [Interpreter(str(path)).get_input_details()[0]["dtype"].__name__ for path in paths]
    assert inputs == [first_cut_input, first_cut_input]


def test_each_stage_adds_the_difference_of_the_medians(tool):
    rows = tool.layer_rows(["a", "b", "c"], [0.1, 0.25, 0.2])
    assert [name for name, _, _ in rows] == ["a", "b", "c"]
    assert [added for _, _, added in rows] == pytest.approx([0.1, 0.15, -0.05])


@pytest.mark.parametrize(("flag", "first_conv"), [(None, "float32"), ("--int8-first-conv", "int8")])
def test_command_times_every_cut(tool, model_path: Path, flag, first_conv):
    args = [str(model_path), "--rounds", "2", "--invokes", "3", *([flag] if flag else [])]
    result = CliRunner().invoke(tool.main, args)
    assert result.exit_code == 0, result.output
    assert f"first convolution {first_conv}" in result.output
    rows = re.findall(r"^  (\S+)\s+([\d.]+)\s+([+-][\d.]+)$", result.output, flags=re.M)
    assert len(rows) == 5 and all(float(ms) > 0 for _, ms, _ in rows)
    assert sum(float(added) for _, _, added in rows) == pytest.approx(float(rows[-1][1]), abs=2e-3)


def test_a_file_that_is_not_a_keras_model_is_named(tool, tmp_path: Path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(tool.main, [str(bad)])
    assert result.exit_code == 1 and f"{bad}: not a loadable Keras model" in result.output
    assert "Traceback" not in result.output
