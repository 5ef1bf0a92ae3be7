from __future__ import annotations

import json
import os
import signal
import time

import cv2
import pytest

from edge.errors import ConfigError, ManifestError, SinkError, SourceError
from edge.pipeline import PipelineOptions
from edge.runner import RunOptions, Terminated, handle_sigterm, run
from edge.sources import DECODE_AHEAD
from edge.types import SourceKind
from edge_testing import synthetic_frames


def _options(tmp_path, model_dir, **kwargs) -> RunOptions:
    return RunOptions(out_dir=tmp_path / "out", pipeline=PipelineOptions(model_dir=model_dir), display=False, **kwargs)


def test_run_on_a_video_writes_every_output(tmp_path, tiny_model_dir, five_frame_video):
    report = run(str(five_frame_video), _options(tmp_path, tiny_model_dir))
    out = tmp_path / "out"
    assert report.frames == 5 and report.stop_reason == "end" and not report.interrupted
    assert report.source_kind is SourceKind.VIDEO and report.detector_model == "short"
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["frame_index"] for e in events] == [0, 1, 2, 3, 4]
    capture = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 5 and summary["tracks"] == [] and summary["stop_reason"] == "end"
    assert "5 frames" in report.summary()


@pytest.mark.parametrize(("kind", "asked", "overlap", "workers"), [
    (SourceKind.VIDEO, None, True, 2),
    (SourceKind.LIVE, None, False, 1),  # a camera: sequential, one detector
    (SourceKind.LIVE, True, True, 2),
    (SourceKind.VIDEO, False, False, 1),
])
def test_files_run_overlapped_and_live_sources_sequentially(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch, kind, asked, overlap, workers
):
    import edge.runner as runner_module
    from edge.pipeline import Pipeline
    from edge.sources import VideoFileSource

    def open_as(source):
        opened = VideoFileSource(source)
        opened.kind = kind  # the file stands in for a camera
        return opened

    seen = {}
    real_from_options, real_deliver = Pipeline.from_options, Pipeline.deliver

    def from_options(options, source_kind):
        seen["workers"] = options.workers
        return real_from_options(options, source_kind)

    def deliver(self, frames, handle, **kwargs):
        seen["overlap"] = kwargs["overlap"]
        seen["decode_ahead"] = frames.decode_ahead
        return real_deliver(self, frames, handle, **kwargs)

    monkeypatch.setattr(runner_module, "open_source", open_as)
    monkeypatch.setattr(Pipeline, "from_options", from_options)
    monkeypatch.setattr(Pipeline, "deliver", deliver)
    report = run(str(five_frame_video), _options(tmp_path, tiny_model_dir, overlap=asked, video=False))
    assert report.frames == 5
    # Overlapped workers read ahead themselves: no decoder thread of the source's own then.
    assert seen == {"overlap": overlap, "workers": workers, "decode_ahead": 0 if overlap else DECODE_AHEAD}


def test_run_on_a_folder_writes_annotated_images(tmp_path, tiny_model_dir):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(synthetic_frames(2)):
        cv2.imwrite(str(folder / f"{index}.png"), image)
    report = run(folder, _options(tmp_path, tiny_model_dir, events=False))
    assert report.source_kind is SourceKind.IMAGES and report.detector_model == "full"
    assert sorted(p.name for p in (tmp_path / "out" / "annotated").iterdir()) == ["000000_0.png", "000001_1.png"]
    assert not (tmp_path / "out" / "events.jsonl").exists()
    assert set(report.outputs) == {"annotated", "summary"}


def test_max_frames_and_no_video(tmp_path, tiny_model_dir, five_frame_video):
    report = run(five_frame_video, _options(tmp_path, tiny_model_dir, max_frames=2, video=False))
    assert (report.frames, report.stop_reason) == (2, "max_frames")
    assert not (tmp_path / "out" / "annotated.mp4").exists()
    assert len((tmp_path / "out" / "events.jsonl").read_text().splitlines()) == 2


def test_a_summary_that_cannot_be_written_is_a_sink_error(tmp_path, tiny_model_dir, five_frame_video):
    report = run(five_frame_video, _options(tmp_path, tiny_model_dir, max_frames=1, video=False))
    with pytest.raises(SinkError, match="cannot write the run summary"):
        report.save(tmp_path / "missing" / "summary.json")


def test_bad_inputs_fail_before_writing(tmp_path, tiny_model_dir):
    with pytest.raises(SourceError, match="does not exist"):
        run(tmp_path / "missing.mp4", _options(tmp_path, tiny_model_dir))
    with pytest.raises(ManifestError, match="no model manifest"):
        run(tmp_path / "missing.mp4", _options(tmp_path, tmp_path))
    with pytest.raises(ConfigError, match="max_frames"):
        RunOptions(out_dir=tmp_path, max_frames=0)


def test_a_run_that_cannot_start_leaves_no_empty_folder(tmp_path, tiny_model_dir, monkeypatch):
    with pytest.raises(SourceError, match="does not exist"):
        run(tmp_path / "missing.mp4", _options(tmp_path, tiny_model_dir))
    assert not (tmp_path / "out").exists()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        run(tmp_path / "missing.mp4", RunOptions(pipeline=PipelineOptions(model_dir=tiny_model_dir), display=False))
    assert list((tmp_path / "runs").iterdir()) == []
    (tmp_path / "kept" / "out").mkdir(parents=True)
    with pytest.raises(SourceError, match="does not exist"):
        run(tmp_path / "missing.mp4", _options(tmp_path / "kept", tiny_model_dir))
    assert (tmp_path / "kept" / "out").is_dir()  # a folder the run did not create stays


def test_a_run_that_fails_before_its_first_frame_leaves_no_files_and_blocks_no_retry(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch
):
    import edge.sinks

    monkeypatch.setattr(edge.sinks, "display_available", lambda: False)
    with pytest.raises(SinkError, match="no display"):
        run(five_frame_video, RunOptions(out_dir=tmp_path / "out", pipeline=PipelineOptions(model_dir=tiny_model_dir),
                                         display=True))
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not an image")
    (tmp_path / "kept").mkdir()
    with pytest.raises(SourceError, match="none of the 1 images"):
        run(broken, RunOptions(out_dir=tmp_path / "kept", pipeline=PipelineOptions(model_dir=tiny_model_dir),
                               display=False))
    assert list((tmp_path / "kept").iterdir()) == []
    assert run(five_frame_video, _options(tmp_path / "kept", tiny_model_dir)).frames == 5  # no refusal


def test_an_overwrite_that_fails_before_its_first_frame_puts_the_earlier_run_back(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch
):
    import edge.sinks

    out = tmp_path / "out"
    run(five_frame_video, _options(tmp_path, tiny_model_dir))
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    monkeypatch.setattr(edge.sinks, "display_available", lambda: False)
    with pytest.raises(SinkError, match="no display"):
        run(five_frame_video, RunOptions(out_dir=out, pipeline=PipelineOptions(model_dir=tiny_model_dir),
                                         display=True, overwrite=True))
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_an_overwrite_stopped_before_its_first_frame_keeps_the_earlier_run(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch
):
    from edge.pipeline import Pipeline

    out = tmp_path / "out"
    run(five_frame_video, _options(tmp_path, tiny_model_dir))
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def stopped(self, frames, handle, **kwargs):
        raise Terminated("received signal 15")  # SIGTERM while the source is still starting

    monkeypatch.setattr(Pipeline, "deliver", stopped)
    report = run(five_frame_video, _options(tmp_path, tiny_model_dir, overwrite=True))
    assert (report.frames, report.stop_reason, report.outputs) == (0, "terminated", {})
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_a_source_among_the_outputs_it_would_replace_is_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(synthetic_frames(2)):
        cv2.imwrite(str(folder / f"{index}.png"), image)
    run(folder, _options(tmp_path, tiny_model_dir, events=False))
    with pytest.raises(ConfigError, match="is an output of the run in"):
        run(tmp_path / "out" / "annotated", _options(tmp_path, tiny_model_dir, overwrite=True))
    assert len(list((tmp_path / "out" / "annotated").iterdir())) == 2


def test_runs_without_out_dir_started_in_the_same_second_get_folders_of_their_own(
    tmp_path, tiny_model_dir, five_frame_video, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda pattern: "edge-20261207-010203")
    options = RunOptions(pipeline=PipelineOptions(model_dir=tiny_model_dir), display=False, max_frames=1)
    first, second = (run(five_frame_video, options) for _ in range(2))
    assert first.outputs["summary"] == os.path.join("runs", "edge-20261207-010203", "summary.json")
    assert second.outputs["summary"] == os.path.join("runs", "edge-20261207-010203-2", "summary.json")
    assert len((tmp_path / first.outputs["events"]).read_text().splitlines()) == 1
    assert len((tmp_path / second.outputs["events"]).read_text().splitlines()) == 1


def test_an_earlier_run_is_replaced_only_with_overwrite(tmp_path, tiny_model_dir, five_frame_video):
    out = tmp_path / "out"
    run(five_frame_video, _options(tmp_path, tiny_model_dir))
    (out / "notes.txt").write_text("mine")
    earlier = r"holds an earlier run's events.jsonl, annotated.mp4, summary.json; pass --overwrite"
    with pytest.raises(ConfigError, match=earlier):
        run(five_frame_video, _options(tmp_path, tiny_model_dir, max_frames=2, video=False))
    assert len((out / "events.jsonl").read_text().splitlines()) == 5
    # a run that cannot start leaves the earlier outputs as they were
    with pytest.raises(SourceError, match="does not exist"):
        run(tmp_path / "missing.mp4", _options(tmp_path, tiny_model_dir, overwrite=True))
    assert (out / "annotated.mp4").is_file()
    run(five_frame_video, _options(tmp_path, tiny_model_dir, max_frames=2, video=False, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "notes.txt", "summary.json"]  # no stale video
    assert len((out / "events.jsonl").read_text().splitlines()) == 2


def test_sigterm_becomes_a_keyboard_interrupt_only_while_handled():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), handle_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(Terminated, KeyboardInterrupt)


def test_a_second_sigterm_does_not_interrupt_the_finalisation():
    finished = False
    with pytest.raises(Terminated), handle_sigterm():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:  # what the runner does after the first: write every output
            os.kill(os.getpid(), signal.SIGTERM)
            finished = True
    assert finished


def test_sigterm_handling_ends_cleanly_when_the_previous_handler_was_set_outside_python(monkeypatch):
    installed = []

    def fake_signal(signum, handler):  # signal.signal returns None for a handler set from C
        installed.append(handler)
        return None

    monkeypatch.setattr(signal, "signal", fake_signal)
    with handle_sigterm():
        pass
    assert installed[-1] is signal.SIG_DFL


@pytest.mark.parametrize(("options", "says"), [
    ({"out_dir": 123}, "out_dir must be a folder path"),
    ({"pipeline": {"model_dir": "m"}}, "pipeline must be a PipelineOptions"),
    ({"video": "no"}, "video must be True or False"),
    ({"overlap": "no"}, "overlap must be True, False or None"),
    ({"max_frames": True}, "max_frames must be a whole number"),
])
def test_run_options_of_the_wrong_type_are_refused(options, says):
    with pytest.raises(ConfigError, match=says):
        RunOptions(**options)


def test_run_refuses_settings_that_are_not_run_options(tmp_path):
    with pytest.raises(ConfigError, match="run\\(\\) takes its settings as RunOptions"):
        run(tmp_path / "clip.mp4", {"out_dir": tmp_path})
