"""tools/time_invoke.py: TFLite files timed alternately, one figure per round and file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tool_scripts import loaded_tool


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("time_invoke") as module:
        yield module


def test_each_file_gets_a_positive_time_per_round(tool, tiny_model_dir: Path):
    model = tiny_model_dir / "model_float32.tflite"
    [(path, times)] = tool.time_alternating([model], batch=3, rounds=4, invokes=5)
    assert path == model and len(times) == 4 and all(t > 0 for t in times)


def test_a_file_given_twice_is_timed_twice(tool, tiny_model_dir: Path):
    model = tiny_model_dir / "model_float32.tflite"
    timed = tool.time_alternating([model, model], batch=1, rounds=2, invokes=3)
    assert [path for path, _ in timed] == [model, model] and all(len(times) == 2 for _, times in timed)


def test_command_prints_a_median_for_each_batch_and_file(tool, tiny_model_dir: Path, tmp_path: Path):
    model = tiny_model_dir / "model_float32.tflite"
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(model.read_bytes())
    result = CliRunner().invoke(tool.main, [str(model), str(copy), "--batch", "1", "--batch", "5",
                                            "--rounds", "2", "--invokes", "3"])
    assert result.exit_code == 0, result.output
    assert re.findall(r"^batch (\d+):", result.output, flags=re.M) == ["1", "5"]
    medians = re.findall(r"^  (\S+)\s+median ([\d.]+) ms", result.output, flags=re.M)
    assert [name for name, _ in medians] == [str(model), str(copy)] * 2  # positive: the test above


def test_a_file_that_is_not_a_model_is_named(tool, tmp_path: Path):
    bad = tmp_path / "notes.tflite"
    bad.write_text("not a model")
    result = CliRunner().invoke(tool.main, [str(bad)])
    assert result.exit_code == 1 and str(bad) in result.output and "Traceback" not in result.output
