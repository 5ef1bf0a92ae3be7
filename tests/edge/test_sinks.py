from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import edge.sinks as sinks_module
from edge_testing import LABELS
from edge.errors import SinkError
from edge.sinks import (
    ImageDirSink,
    JsonlSink,
    Sink,
    StopRequested,
    SummarySink,
    VideoFileSink,
    WindowSink,
    display_available,
)
from edge.types import FaceResult, Frame, FrameResult


def _probs(winner: int) -> tuple[float, ...]:
    probs = np.full(len(LABELS), 0.05)
    probs[winner] = 1.0 - 0.05 * (len(LABELS) - 1)
    return tuple(probs.tolist())


def _face(track_id: int, winner: int, box=(10, 10, 40, 40)) -> FaceResult:
    return FaceResult(
        track_id=track_id,
        box_xyxy=box,
        detection_score=0.9,
        raw_probs=_probs(winner),
        smoothed_probs=_probs(winner),
        label=LABELS[winner],
        confidence=max(_probs(winner)),
    )


def _frames(count: int = 4):
    for index in range(count):
        image = np.full((64, 96, 3), 30 * index, np.uint8)
        faces = (_face(1, index % 2),) if index else ()
        yield Frame(image, index, index * 100, name=f"f{index}.jpg"), FrameResult(index, index * 100, faces, LABELS)


@pytest.fixture(params=["jsonl", "video", "images", "summary", "window"])
def any_sink(request, tmp_path, monkeypatch):
    monkeypatch.setattr(sinks_module, "display_available", lambda: True)
    monkeypatch.setattr(cv2, "imshow", lambda *a: None)
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "waitKey", lambda *a: -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    return {
        "jsonl": lambda: JsonlSink(tmp_path / "out" / "events.jsonl"),
        "video": lambda: VideoFileSink(tmp_path / "out.mp4", fps=10.0),
        "images": lambda: ImageDirSink(tmp_path / "annotated"),
        "summary": SummarySink,
        "window": WindowSink,
    }[request.param]()


def test_every_sink_honours_the_contract(any_sink):
    with any_sink as sink:
        assert isinstance(sink, Sink)
        for frame, result in _frames():
            sink.write(frame, result)
    any_sink.close()  # idempotent
    if isinstance(any_sink, (JsonlSink, VideoFileSink, ImageDirSink)):  # a file sink writes nothing once closed
        with pytest.raises(SinkError, match="closed"):
            any_sink.write(*next(_frames()))


def test_jsonl_lines_are_flushed_as_written_and_parse(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlSink(path) as sink:
        for count, (frame, result) in enumerate(_frames(), 1):
            sink.write(frame, result)
            lines = path.read_text().splitlines()  # readable before close
            assert len(lines) == count
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["frame_index"] for e in events] == [0, 1, 2, 3]
    assert events[0]["faces"] == []
    face = events[1]["faces"][0]
    assert set(face) == {
        "track_id",
        "box_xyxy",
        "detection_score",
        "label",
        "confidence",
        "raw_probs",
        "smoothed_probs",
    }
    assert list(face["raw_probs"]) == list(LABELS)
    assert face["label"] == LABELS[1] and face["box_xyxy"] == [10, 10, 40, 40]
    assert events[2]["image"] == "f2.jpg"
    with pytest.raises(SinkError, match="closed"):
        sink.write(*next(_frames()))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_jsonl_write_failure_is_a_sink_error():
    with JsonlSink("/dev/full") as sink, pytest.raises(SinkError, match="cannot write events to /dev/full"):
        sink.write(*next(_frames()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a file size limit (RLIMIT_FSIZE)")
def test_events_cut_short_by_a_full_disk_end_on_a_whole_line(tmp_path):
    # A file size limit stands in for a full disk; 2,500 bytes falls inside a line of about 450.
    script = f"""
import resource, sys
from edge.errors import SinkError
from edge.sinks import JsonlSink
from edge.types import FaceResult, Frame, FrameResult
import numpy as np
labels = {LABELS!r}
probs = tuple([1.0 / len(labels)] * len(labels))
face = FaceResult(track_id=1, box_xyxy=(1, 2, 3, 4), detection_score=0.9, raw_probs=probs,
                  smoothed_probs=probs, label=labels[0], confidence=probs[0])
resource.setrlimit(resource.RLIMIT_FSIZE, (2_500, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
with JsonlSink({str(tmp_path / "events.jsonl")!r}) as sink:
    try:
        for index in range(100):
            sink.write(Frame(np.zeros((4, 4, 3), np.uint8), index, index), FrameResult(index, index, (face,), labels))
    except SinkError as error:
        print(error)
        sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "cannot write events to" in done.stdout, done.stdout + done.stderr
    text = (tmp_path / "events.jsonl").read_text()
    assert text.endswith("\n") and 0 < len(text) <= 2_500
    assert [json.loads(line)["frame_index"] for line in text.splitlines()] == list(range(text.count("\n")))


def test_video_sink_writes_a_readable_mp4_at_the_source_fps(tmp_path):
    path = tmp_path / "annotated.mp4"
    with VideoFileSink(path, fps=12.0) as sink:
        for frame, result in _frames(6):
            sink.write(frame, result)
        # a frame of another size is resized, not refused
        sink.write(Frame(np.zeros((32, 48, 3), np.uint8), 6, 600), FrameResult(6, 600, (), LABELS))
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 7 == sink.frames_written
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (96, 64)
    capture.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a file size limit (RLIMIT_FSIZE)")
def test_a_video_the_encoder_cannot_write_is_a_sink_error(tmp_path):
    # A file size limit stands in for a full disk: OpenCV's writer then fails frame after frame.
    script = f"""
import resource, sys
import numpy as np
from edge.errors import SinkError
from edge.sinks import VideoFileSink
from edge.types import Frame, FrameResult
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
with VideoFileSink({str(tmp_path / "annotated.mp4")!r}, fps=25.0) as sink:
    try:
        for index in range(200):
            sink.write(Frame(noise, index, 40 * index), FrameResult(index, 40 * index))
    except SinkError as error:
        print(error)
        sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot write video" in done.stdout and "the encoder failed at frame" in done.stdout


def test_video_sink_rejects_a_bad_fps(tmp_path):
    with pytest.raises(SinkError, match="fps"):
        VideoFileSink(tmp_path / "x.mp4", fps=0)


def test_image_dir_sink_names_files_after_the_frames(tmp_path):
    with ImageDirSink(tmp_path / "annotated") as sink:
        for frame, result in _frames(2):
            sink.write(frame, result)
    assert [p.name for p in sink.paths] == ["000000_f0.png", "000001_f1.png"]
    assert cv2.imread(str(sink.paths[1])).shape == (64, 96, 3)


def test_summary_per_track():
    sink = SummarySink()
    faces_per_frame = [(_face(1, 4),), (_face(1, 4), _face(2, 0)), (_face(1, 6),), (), (_face(1, 4),)]
    for index, faces in enumerate(faces_per_frame):
        sink.write(Frame(np.zeros((4, 4, 3), np.uint8), index, index), FrameResult(index, index, faces, LABELS))
    assert (sink.frames, sink.frames_with_faces, sink.faces) == (5, 4, 5)
    first, second = sink.tracks()
    assert (first.track_id, first.frames_seen, first.first_frame, first.last_frame) == (1, 4, 0, 4)
    assert first.dominant_label == "happy"
    assert first.mean_smoothed_probs[4] == pytest.approx((3 * _probs(4)[4] + 0.05) / 4)
    assert sum(first.mean_raw_probs) == pytest.approx(1.0)
    assert (second.track_id, second.frames_seen, second.dominant_label) == (2, 1, "anger")
    assert second.to_dict(LABELS)["mean_raw_probs"]["anger"] == pytest.approx(0.65)


@pytest.mark.parametrize(
    ("key", "visible", "stops"), [(ord("q"), 1.0, True), (27, 1.0, True), (-1, 0.0, True), (-1, 1.0, False)]
)
def test_window_sink_stops_on_q_escape_or_close(monkeypatch, key, visible, stops):
    monkeypatch.setattr(sinks_module, "display_available", lambda: True)
    shown = []
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, image: shown.append(image))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: key)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: visible)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    frame, result = list(_frames(2))[1]
    with WindowSink() as sink:
        if stops:
            with pytest.raises(StopRequested):
                sink.write(frame, result)
        else:
            sink.write(frame, result)
    assert shown and shown[0].shape == frame.image_rgb.shape


def test_window_sink_without_gui_support_warns_and_goes_on(monkeypatch, caplog):
    def no_gui(*args):
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    monkeypatch.setattr(sinks_module, "display_available", lambda: True)
    sink = WindowSink()
    for frame, result in _frames(3):
        sink.write(frame, result)
    sink.close()
    assert caplog.text.count("cannot show a window") == 1


def test_window_sink_refuses_to_start_without_a_display(monkeypatch):
    monkeypatch.setattr(sinks_module, "display_available", lambda: False)
    with pytest.raises(SinkError, match="--no-display"):
        WindowSink()


@pytest.mark.parametrize(
    ("env", "expected"), [({}, False), ({"DISPLAY": ":0"}, True), ({"WAYLAND_DISPLAY": "wayland-0"}, True)]
)
def test_display_available_on_linux(monkeypatch, env, expected):
    monkeypatch.setattr(sinks_module.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert display_available() is expected


def test_jsonl_lines_are_exactly_json_dumps_of_to_dict(tmp_path):
    import json

    from edge.sinks import JsonlSink
    from edge.types import FaceResult, Frame, FrameResult

    labels = ("anger", 'say "hi"', "été")
    faces = (
        FaceResult(1, (0, 1, 20, 30), 0.912345678, (0.1, 1e-09, 0.899999), (0.2, 0.3, 0.5), "anger", 0.5),
        FaceResult(2, (5, 6, 7, 8), 1.0, (float("nan"), 0.0, 1.0), (1 / 3, 1 / 3, 1 / 3), "été", 1 / 3),
    )
    sink = JsonlSink(tmp_path / "e.jsonl")
    for frame, result in (
        (Frame(np.zeros((2, 2, 3), np.uint8), 3, 99), FrameResult(3, 99, faces, labels)),
        (Frame(np.zeros((2, 2, 3), np.uint8), 4, 100, name='a "b".png'), FrameResult(4, 100, (), labels)),
    ):
        expected = result.to_dict(5)
        if frame.name:
            expected["image"] = frame.name
        assert sink.line(frame, result) == json.dumps(expected, separators=(",", ":")) + "\n"
    sink.close()
