"""tools/bench_targets.py: every speed target measured in interleaved rounds, with a verdict."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tool_scripts import loaded_tool


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("bench_targets") as module:
        yield module


def test_a_target_is_met_on_the_right_side_of_its_limit(tool):
    fps = next(target for target in tool.TARGETS if target.name == "end-to-end FPS")
    p95 = next(target for target in tool.TARGETS if target.name == "frame p95, sequential")
    assert fps.met(600.0) and not fps.met(599.9)
    assert p95.met(3.0) and not p95.met(3.01)


def test_summary_takes_the_median_of_the_rounds(tool):
    figures = {target.name: [1.0, 2.0, 100.0] for target in tool.TARGETS}
    figures["end-to-end FPS"] = [500.0, 650.0, 620.0]
    rows = {row["target"]: row for row in tool.summary(figures)}
    fps = rows["end-to-end FPS"]
    assert (fps["median"], fps["min"], fps["max"], fps["met"], fps["rounds_met"]) == (620.0, 500.0, 650.0, True, 2)
    assert rows["frame p95, sequential"]["median"] == 2.0 and rows["frame p95, sequential"]["met"]
    table = tool.table(list(rows.values()), {"ers_fps": 600.0, "fer_fps": 50.0, "ratio": 12.0, "met": True})
    assert "end-to-end FPS" in table and "2/3" in table and "ers against fer" in table


def test_every_run_of_a_round_keeps_the_base_settings(tool):
    from edge.bench import BenchOptions

    runs = tool._runs(BenchOptions(caller_works=False, detector_engine="litert", trim_letterbox=True))
    assert set(runs) == {"overlapped", "sequential", "faces1", "faces5", "events"}
    assert all(not run.caller_works and run.detector_engine.value == "litert" and run.trim_letterbox
               for run in runs.values())


@pytest.mark.slow
def test_the_tool_measures_every_target_on_a_real_clip(tool, media, tiny_model_dir, tmp_path):
    out = tmp_path / "targets.json"
    args = ["--clip", str(media / "single_face.mp4"), "--model-dir", str(tiny_model_dir), "--variant", "float32",
            "--rounds", "2", "--frames", "4", "--warmup", "1", "--detector-engine", "litert", "--dedicated-workers",
            "--trim-letterbox", "--json", str(out)]
    result = CliRunner().invoke(tool.main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["rounds"] == 2 and data["fer"] is None and data["detector_engine"] == "litert"
    assert data["caller_works"] is False and data["trim_letterbox"] is True
    assert data["model_dir"] == str(tiny_model_dir)
    assert f"{tiny_model_dir.name} float32, detector on litert, dedicated workers, letterbox trimmed" in result.output
    names = [row["target"] for row in data["targets"]]
    assert len(names) == 6 and "5-face frame against 1-face frame" in names
    for row in data["targets"]:
        assert len(row["values"]) == 2 and row["min"] <= row["median"] <= row["max"]
        assert row["target"] in result.output
    by_name = {row["target"]: row for row in data["targets"]}
    assert by_name["end-to-end FPS"]["min"] > 0 and by_name["frame p95, sequential"]["min"] > 0
    assert by_name["5-face frame against 1-face frame"]["min"] > 0



def test_a_median_just_past_its_limit_is_not_printed_as_the_limit(tool):
    rows = tool.summary({target.name: [1.6004] * 3 for target in tool.TARGETS})
    ratio = next(row for row in rows if row["target"] == "5-face frame against 1-face frame")
    line = next(line for line in tool.table([ratio], None).splitlines() if line.startswith("5-face"))
    assert "1.6004" in line and "<= 1.6x" in line and " no " in line
    fps = next(row for row in rows if row["target"] == "end-to-end FPS")
    assert ">= 600 FPS  no" in tool.table([fps], None)  # the widest limit still leaves the verdict apart


def test_bad_input_is_one_line_before_any_round(tool, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(tool, "measure", lambda *args, **kwargs: ran.append(args))
    (tmp_path / "a_file").write_text("x")
    for args, says in ((["--clip", "nope.mp4"], "no sample clip nope.mp4"),
                       (["--fer-python", str(tmp_path / "a_file")], "fer package is not importable"),
                       (["--json", str(tmp_path / "a_file" / "x.json")], "is not a writable folder"),
                       (["--json", "-"], "- (the JSON on stdout) is for `ers bench`"),
                       (["--json", ""], "is not a file name\n")):
        result = CliRunner().invoke(tool.main, args)
        assert result.exit_code != 0 and says in result.output and "Traceback" not in result.output, result.output
    assert ran == []
