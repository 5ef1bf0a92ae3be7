from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import edge.pipeline as pipeline_module
from edge.cli import cli


def test_run_help_lists_the_options():
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--model",
        "--model-dir",
        "--variant",
        "--detector",
        "--detector-engine",
        "--min-confidence",
        "--min-face-size",
        "--smoothing-alpha",
        "--workers",
        "--caller-works",
        "--dedicated-workers",
        "--out-dir",
        "--no-video",
        "--no-events",
        "--no-display",
        "--max-frames",
        "--threads",
    ):
        assert flag in result.output


@pytest.mark.parametrize(("detector", "trimmed"), [("full", False), ("short", True)])
def test_run_writes_outputs_and_prints_a_summary(tmp_path, tiny_model_dir, five_frame_video, detector, trimmed):
    """The summary says whether the letterbox was trimmed: the full-range model never is."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(five_frame_video),
            "--model-dir",
            str(tiny_model_dir),
            "--out-dir",
            str(out),
            "--no-display",
            "--detector",
            detector,
            "--detector-engine",
            "litert",
            "--trim-letterbox",
            "--min-confidence",
            "0.6",
            "--min-face-size",
            "20",
            "--smoothing-alpha",
            "0.5",
            "--threads",
            "1",
            "--max-frames",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 frames" in result.output and "events.jsonl" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detector_model"] == detector and summary["stop_reason"] == "max_frames"
    assert summary["detector_engine"] == "litert" and summary["trim_letterbox"] is trimmed
    assert (out / "annotated.mp4").is_file()


def test_run_without_a_default_model_says_how_to_get_one(tmp_path, monkeypatch, five_frame_video):
    monkeypatch.setattr(pipeline_module, "DEFAULT_MODEL_DIR", tmp_path / "emotion")
    result = CliRunner().invoke(cli, ["run", str(five_frame_video), "--no-display", "--out-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no default emotion model is installed" in result.output
    assert "ers export" in result.output and "--model-dir" in result.output
    assert "Traceback" not in result.output


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_model_dir):
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["run", str(tmp_path / "nope.mp4"), "--model-dir", str(tiny_model_dir), "--no-display"]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
    no_manifest = runner.invoke(cli, ["run", "0", "--model-dir", str(tmp_path), "--no-display"])
    assert no_manifest.exit_code == 1 and "no model manifest" in no_manifest.output
    camera = runner.invoke(
        cli, ["run", "97", "--model-dir", str(tiny_model_dir), "--no-display", "--out-dir", str(tmp_path / "o")]
    )
    assert camera.exit_code == 1 and "no camera at index 97" in camera.output
    bad_choice = runner.invoke(cli, ["run", "0", "--detector", "huge"])
    assert bad_choice.exit_code == 2
    bad_engine = runner.invoke(cli, ["run", "0", "--detector-engine", "tflite"])
    assert bad_engine.exit_code == 2 and "tflite" in bad_engine.output


def test_run_with_a_shipped_model_by_name(tmp_path, five_frame_video):
    args = ["run", str(five_frame_video), "--no-display", "--no-video", "--max-frames", "2"]
    result = CliRunner().invoke(cli, [*args, "--model", "fast", "--out-dir", str(tmp_path / "fast")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "fast" / "summary.json").read_text())
    assert summary["model_dir"] == str(pipeline_module.FAST_MODEL_DIR)
    both = CliRunner().invoke(cli, [*args, "--model", "fast", "--model-dir", str(tmp_path), "--out-dir", str(tmp_path)])
    assert both.exit_code == 2 and "give one of them" in both.output
    assert CliRunner().invoke(cli, [*args, "--model", "slow"]).exit_code == 2


def test_a_shipped_model_that_is_not_installed_is_one_line(tmp_path, monkeypatch, five_frame_video):
    monkeypatch.setattr(pipeline_module, "FAST_MODEL_DIR", tmp_path / "emotion_fast")
    result = CliRunner().invoke(cli, ["run", str(five_frame_video), "--model", "fast", "--no-display"])
    assert result.exit_code == 1 and "no 'fast' emotion model is installed" in result.output
    assert "Traceback" not in result.output


def test_run_into_an_earlier_runs_folder_needs_overwrite(tmp_path, tiny_model_dir, five_frame_video):
    args = ["run", str(five_frame_video), "--model-dir", str(tiny_model_dir), "--no-display", "--max-frames", "2",
            "--out-dir", str(tmp_path / "out")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "holds an earlier run's" in refused.output and "--overwrite" in refused.output
    assert "Traceback" not in refused.output
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0


def test_run_passes_who_works_on_frames_to_the_pipeline(tmp_path, tiny_model_dir, five_frame_video, monkeypatch):
    seen = []
    real = pipeline_module.Pipeline.deliver

    def recorded(self, frames, handle, **kwargs):
        seen.append((self.caller_works, kwargs.get("overlap")))
        return real(self, frames, handle, **kwargs)

    monkeypatch.setattr(pipeline_module.Pipeline, "deliver", recorded)
    args = ["run", str(five_frame_video), "--model-dir", str(tiny_model_dir), "--no-display", "--no-video"]
    for flag, out in (("--dedicated-workers", "a"), ("--caller-works", "b")):
        result = CliRunner().invoke(cli, [*args, flag, "--out-dir", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    assert seen == [(False, True), (True, True)]


def test_ctrl_c_before_the_frame_loop_exits_130(tmp_path, monkeypatch):
    import edge.commands

    def interrupted(source, options):
        raise KeyboardInterrupt  # e.g. while the models load

    monkeypatch.setattr(edge.commands, "run_source", interrupted)
    result = CliRunner().invoke(cli, ["run", "clip.mp4", "--no-display", "--out-dir", str(tmp_path / "o")])
    assert result.exit_code == 130 and "Aborted" not in result.output


def test_an_overwrite_run_stopped_before_its_first_frame_says_the_earlier_run_is_kept(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch
):
    args = ["run", str(five_frame_video), "--model-dir", str(tiny_model_dir), "--no-display",
            "--out-dir", str(tmp_path / "out")]
    assert CliRunner().invoke(cli, args).exit_code == 0

    def interrupted(self, frames, handle, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_module.Pipeline, "deliver", interrupted)
    result = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 130 and "nothing written: the earlier run's outputs in" in result.output
    assert (tmp_path / "out" / "summary.json").is_file() and (tmp_path / "out" / "annotated.mp4").is_file()


def test_a_run_stopped_before_its_first_frame_names_only_the_outputs_it_wrote(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch
):
    def interrupted(self, frames, handle, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_module.Pipeline, "deliver", interrupted)
    result = CliRunner().invoke(cli, ["run", str(five_frame_video), "--model-dir", str(tiny_model_dir),
                                      "--no-display", "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 130 and "events:" in result.output and "annotated:" not in result.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["outputs"].keys() == {"events", "summary"}
