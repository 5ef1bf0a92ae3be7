"""``ers bench``: options, a complete report on a short clip, N tiled faces, the fer side-by-side, the CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import edge.bench as bench_module
from edge.bench import STAGES, BenchOptions, BenchReport, benchmark, machine_info, versions
from edge.benchclips import LoopedClip, grid_shape, sample_clip, tile_faces
from edge.cli import cli
from edge.cores import worker_cores
from edge.errors import ConfigError, SinkError, SourceError
from edge.sources import DECODE_AHEAD
from edge_testing import synthetic_frames, write_video


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"frames": 0}, "frames"),
        ({"warmup_frames": -1}, "warmup_frames"),
        ({"num_threads": 0}, "num_threads"),
        ({"faces": 0}, "faces"),
        ({"faces": 100}, "faces"),
        ({"detector": "tiny"}, "detector"),
        ({"detector_engine": "tflite"}, "detector_engine"),
        ({"trim_letterbox": True}, "trim_letterbox needs the litert engine"),
        ({"decode_ahead": -1}, "decode_ahead"),
        ({"decode_threads": 0}, "decode_threads"),
        ({"fer_frames": 0}, "fer_frames"),
        ({"frames": True}, "frames"),
        ({"workers": 0}, "workers"),
        ({"caller_works": "no"}, "caller_works"),
        ({"realtime": True, "baseline": True}, "realtime"),
        ({"realtime": True, "fer": True}, "realtime"),
    ],
)
def test_options_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        BenchOptions(**kwargs)


def test_options_defaults_measure_the_headless_core():
    options = BenchOptions(model_dir="m", source="clip.mp4")
    assert options.model_dir == Path("m") and options.source == Path("clip.mp4")
    assert (options.draw, options.encode, options.events) == (False, False, False)
    assert options.detector.value == "short" and options.faces is None
    assert options.overlapped and options.worker_count == options.workers == 2


def test_realtime_runs_sequentially_like_a_camera_unless_told():
    assert not BenchOptions(realtime=True).overlapped and BenchOptions(realtime=True).worker_count == 1
    assert BenchOptions(realtime=True, overlap=True, workers=3).worker_count == 3
    assert not BenchOptions(overlap=False).overlapped and BenchOptions(overlap=False).worker_count == 1


def test_the_clip_decodes_ahead_on_its_own_thread_only_for_a_sequential_pipeline():
    assert BenchOptions().decode_ahead_frames == 0  # the overlapped workers read ahead themselves
    assert BenchOptions(overlap=False).decode_ahead_frames == DECODE_AHEAD
    assert BenchOptions(realtime=True).decode_ahead_frames == 0  # paced frames decode on arrival
    assert BenchOptions(decode_ahead=3).decode_ahead_frames == 3
    assert BenchOptions(overlap=False, decode_ahead=0).decode_ahead_frames == 0


def test_realtime_paces_frames_at_the_clip_rate_and_times_from_arrival(tmp_path, tiny_model_dir):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(4, 96, 64), fps=50.0)
    report = benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=8, warmup_frames=1, realtime=True,
                                    draw=True, encode=True, events=True))
    _check_report(report, 8, all_stages=False)
    assert report.fps <= 50.0 * 1.05  # frames cannot come faster than they arrive
    assert report.latency.mean_ms < 0.5 * report.elapsed_s * 1000.0 / 8  # no queue: far below 1/FPS
    settings = report.settings
    assert settings["realtime"] and not settings["overlap"] and settings["decode_ahead"] == 0
    assert settings["workers"] == 1 and report.fer is None
    assert any("arrive at the clip's 50.0 FPS" in note for note in report.notes)


def _check_report(report: BenchReport, frames: int, all_stages: bool) -> None:
    assert report.frames == frames
    assert [stage.name for stage in report.stages] == list(STAGES)
    for stage in report.stages:
        values = (stage.mean_ms, stage.p50_ms, stage.p95_ms, stage.p99_ms, stage.max_ms)
        assert all(np.isfinite(values)) and min(values) >= 0.0
        assert stage.p50_ms <= stage.p95_ms <= stage.p99_ms <= stage.max_ms
        if all_stages or stage.name not in ("preprocess", "classify"):
            assert stage.enabled and stage.mean_ms > 0.0, stage
    # FPS agrees with the wall time, and the frames' latencies add up to (nearly) all of it; with
    # overlap, frames are in flight together, so their latencies add up to more; paced frames
    # (realtime) leave the pipeline idle between them
    assert report.fps == pytest.approx(frames / report.elapsed_s)
    latencies_s = report.latency.mean_ms * frames / 1000.0
    if not report.settings["realtime"]:
        assert latencies_s > 0.5 * report.elapsed_s
    if not report.settings["overlap"]:
        assert latencies_s <= report.elapsed_s * (1.0 + 1e-6)
    assert report.latency.mean_ms >= sum(stage.mean_ms for stage in report.stages) - 1e-6
    assert report.cpu["cpu_ms_per_frame"] > 0 and report.cpu["process_threads"] >= 1


@pytest.mark.parametrize("overlap", [True, False])
def test_benchmark_gives_a_complete_report_on_a_short_clip(tmp_path, tiny_model_dir, overlap):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(4, 96, 64), fps=10.0)
    options = BenchOptions(
        source=clip, model_dir=tiny_model_dir, frames=6, warmup_frames=2, draw=True, encode=True, events=True,
        fer=False, overlap=overlap,
    )
    report = benchmark(options)
    _check_report(report, 6, all_stages=False)  # no face in synthetic frames: nothing to classify
    assert report.faces_per_frame == 0.0 and report.face_counts == {0: 6}
    assert any("played 2 times" in note for note in report.notes)  # 8 frames from a 4-frame clip
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["stages_ms"]) == {*STAGES, "other"}
    assert data["fps"] > 0 and data["frames"] == 6 and data["fer"] is None
    for key in ("cpu_model", "cpu_id", "cpu_features", "logical_cores", "usable_cores", "load_average", "platform"):
        assert key in data["machine"]
    assert set(data["versions"]) == {"python", "numpy", "opencv", "mediapipe", "ai-edge-litert", "ers"}
    settings = data["settings"]
    assert settings["source"] == str(clip) and settings["frame_size"] == "96x64"
    assert settings["variant"] == "float32" and settings["detector"] == "short"
    assert settings["detector_engine"] == "mediapipe" and settings["trim_letterbox"] is False
    assert (settings["draw"], settings["encode"], settings["events"]) == (True, True, True)
    assert (settings["frames"], settings["warmup_frames"], settings["faces"]) == (6, 2, None)
    table = report.table()
    for word in (*STAGES, "FPS", "frame", "CPU", "machine"):
        assert word in table
    saved = json.loads(report.save(tmp_path / "bench.json").read_text())
    assert saved["settings"] == settings


@pytest.mark.parametrize(("overlap", "caller_works"), [(False, True), (True, True), (True, False)])
def test_baseline_times_decode_and_detect(tmp_path, tiny_model_dir, overlap, caller_works):
    """On alternate frames sequentially; in alternate blocks of frames with overlap."""
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(5), fps=10.0)
    report = benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=4, warmup_frames=1, baseline=True,
                                    fer=False, overlap=overlap, caller_works=caller_works))
    assert report.baseline["fps"] > 0 and report.baseline["detect_ms"] > 0 and report.baseline["decode_ms"] >= 0
    assert report.added_percent == pytest.approx(100.0 * (report.latency.p50_ms / report.baseline["frame_ms_p50"] - 1))
    assert report.added_percent_mean == pytest.approx(100.0 * (report.baseline["fps"] / report.fps - 1.0))
    assert report.fps == pytest.approx(4 / report.elapsed_s)
    assert "decode + detect alone" in report.table() and report.to_dict()["added_percent"] is not None
    assert any("played 2 times" in note for note in report.notes)  # 9 or 10 frames from a 5-frame clip
    assert any("blocks of 200 frames alternate" in note for note in report.notes) is overlap
    assert any(note.startswith("frames alternate") for note in report.notes) is (not overlap)
    assert report.settings["workers"] == (2 if overlap else 1) and report.settings["caller_works"] is caller_works


def test_an_overlapped_baseline_alternates_blocks_with_the_pipeline(tmp_path, tiny_model_dir, monkeypatch):
    from edge.pipeline import Pipeline

    monkeypatch.setattr(bench_module, "BASELINE_BLOCK_FRAMES", 2)
    blocks = []
    real = Pipeline.deliver

    def recorded(self, frames, handle, **kwargs):
        blocks.append([])

        def recording(frame, result):
            blocks[-1].append(frame.index)
            handle(frame, result)

        real(self, frames, recording, **kwargs)

    monkeypatch.setattr(Pipeline, "deliver", recorded)
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(5), fps=10.0)
    report = benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=5, warmup_frames=1, baseline=True,
                                    fer=False, overlap=True))
    # warm-up and 2 frames, 2 baseline frames, 2 frames, 2 baseline frames, the last frame, its baseline frame
    assert blocks == [[0, 1, 2], [5, 6], [9]]
    assert report.frames == 5 and report.baseline["fps"] > 0
    assert report.fps == pytest.approx(5 / report.elapsed_s)


def test_switched_off_stages_are_reported_as_off(tmp_path, tiny_model_dir):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(3), fps=10.0)
    report = benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=2, warmup_frames=0, fer=False))
    for name in ("draw", "encode", "events"):
        assert not report.stage(name).enabled and report.stage(name).mean_ms == 0.0
    assert "off" in report.table()
    without_load = dataclasses.replace(report, machine={**report.machine, "load_average": None})  # Windows
    assert "no load average" in without_load.table()
    described = dataclasses.replace(report, machine={**report.machine, "cpu_model": "EPYC", "cpu_id": "family 25",
                                                     "cpu_features": ["avx2", "avx512f"]})
    assert "machine: EPYC (family 25; avx2 avx512f), " in described.table()
    unknown = dataclasses.replace(report, machine={**report.machine, "cpu_model": "arm64", "cpu_id": None,
                                                   "cpu_features": []})
    assert "machine: arm64, " in unknown.table()


@pytest.mark.slow
def test_real_clip_times_every_stage(media, tiny_model_dir):
    report = benchmark(
        BenchOptions(
            source=media / "single_face.mp4",
            model_dir=tiny_model_dir,
            frames=5,
            warmup_frames=2,
            draw=True,
            encode=True,
            events=True,
            fer=False,
        )
    )
    _check_report(report, 5, all_stages=True)
    assert report.faces_per_frame == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("faces", [1, 3, 5])
def test_tiled_faces_mode_shows_the_detector_n_faces(media, tiny_model_dir, faces):
    report = benchmark(
        BenchOptions(
            source=media / "single_face.mp4",
            model_dir=tiny_model_dir,
            frames=6,
            warmup_frames=1,
            faces=faces,
            fer=False,
        )
    )
    assert report.face_counts.get(faces, 0) >= 5, report.face_counts  # (nearly) every frame
    assert report.settings["faces"] == faces and f"{faces} tiled faces" in report.table()


@pytest.mark.parametrize(
    ("faces", "expected"), [(1, (1, 1)), (2, (2, 1)), (4, (3, 2)), (5, (3, 2)), (9, (4, 3)), (36, (8, 5))]
)
def test_grid_shape_fits_every_face(faces, expected):
    columns, rows = grid_shape(faces, 640, 360)
    assert (columns, rows) == expected and columns * rows >= faces


def test_tile_faces_keeps_the_frame_size_and_copies_the_face():
    image = np.zeros((90, 160, 3), np.uint8)
    image[30:60, 60:90] = 200  # the "face"
    tiled = tile_faces(image, (60, 30, 90, 60), 4)
    assert tiled.shape == image.shape and tiled.dtype == np.uint8
    assert (tiled == 200).sum() >= 4 * 100  # four bright copies


def test_looped_clip_keeps_timestamps_increasing_across_loops(five_frame_video):
    clip = LoopedClip(five_frame_video, 12, decode_ahead=2)
    frames = list(clip)
    assert [frame.index for frame in frames] == list(range(12))
    timestamps = [frame.timestamp_ms for frame in frames]
    assert timestamps == sorted(set(timestamps))
    assert len(clip.reopen_s) == 2 and clip.fps == pytest.approx(10.0)
    np.testing.assert_array_equal(frames[5].image_rgb, frames[0].image_rgb)


def test_a_clip_too_short_to_loop_is_refused(tmp_path, monkeypatch, five_frame_video):
    import edge.benchclips

    monkeypatch.setattr(edge.benchclips, "MIN_PLAY_FRAMES", 30)  # the real value (conftest lowers it)
    with pytest.raises(SourceError, match=r"has 5 frame\(s\); a benchmark plays its clip in a loop and needs at "
                                          r"least 30 frames a play"):
        LoopedClip(five_frame_video, 12)
    assert len(list(LoopedClip(five_frame_video, 5))) == 5  # played once: nothing to re-open
    image = tmp_path / "face.jpg"  # an image: a clip of one frame
    cv2.imwrite(str(image), synthetic_frames(1)[0])
    with pytest.raises(SourceError, match="has 1 frame"):
        list(LoopedClip(image, 2))


def test_reopening_a_looped_clip_is_kept_out_of_its_cpu_time(five_frame_video):
    clip = LoopedClip(five_frame_video, 12)
    assert len(list(clip)) == 12 and len(clip.reopen_s) == 2
    assert 0.0 < clip.reopen_cpu_s <= clip.reopen_total_s * 2  # a thread's CPU time in its wall time (clock ticks)


def test_sample_clip_lookup(tmp_path):
    root = tmp_path / "repo"
    with pytest.raises(SourceError, match="fetch_sample_media"):
        sample_clip(root=root)
    cache = root / ".cache" / "media"
    cache.mkdir(parents=True)
    (cache / "single_face.mp4").write_bytes(b"x")
    assert sample_clip(root=root) == cache / "single_face.mp4"
    shared = tmp_path / "shared" / "media" / "pyfeat"
    shared.mkdir(parents=True)
    (shared / "single_face.mp4").write_bytes(b"x")
    assert sample_clip(root=root) == shared / "single_face.mp4"  # the shared copy first


def test_machine_and_versions():
    machine = machine_info()
    assert machine["usable_cores"] >= 1 and machine["cpu_model"]
    assert versions()["python"] == ".".join(map(str, sys.version_info[:3]))


def test_machine_tells_cpus_with_the_same_name_apart(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                   "model name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n\n"
                   "processor\t: 1\nmodel name\t: another\nflags\t\t: amx_int8\n")
    machine = machine_info(x86)
    assert machine["cpu_model"] == "AMD EPYC"  # the first processor's
    assert machine["cpu_id"] == "family 25 model 17 stepping 1"
    assert machine["cpu_features"] == ["avx2", "fma", "avx512f", "avx512_vnni"]
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU part\t: 0xd0c\n\n"
                   "Hardware\t: BCM2835\n")
    machine = machine_info(arm)
    assert machine["cpu_model"] == "BCM2835" and machine["cpu_id"] is None
    assert machine["cpu_features"] == ["asimd", "asimddp", "i8mm"]
    assert machine_info(tmp_path / "missing")["cpu_features"] == []


def test_fer_side_by_side_runs_in_its_own_process(tmp_path, tiny_model_dir, monkeypatch):
    runner = tmp_path / "fake_fer.py"
    runner.write_text(
        "import json, sys\n"
        "print(json.dumps({'version': 'fake', 'frames': int(sys.argv[2]), 'elapsed_s': 1.0, 'fps': 2.0,"
        " 'latency_ms_mean': 500.0, 'latency_ms_p50': 500.0, 'faces_per_frame': 0.0, 'cpu_ms_per_frame': 400.0,"
        " 'clip': sys.argv[1]}))\n"
    )
    monkeypatch.setattr(bench_module, "_FER_RUNNER", runner)
    monkeypatch.setattr(bench_module, "fer_available", lambda python=None: True)
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(3), fps=10.0)
    monkeypatch.chdir(tmp_path)  # a relative clip path reaches fer, which runs in another folder, absolute
    report = benchmark(
        BenchOptions(source=Path("clip.mp4"), model_dir=tiny_model_dir, frames=2, warmup_frames=0, fer=True,
                     fer_frames=4)
    )
    assert report.fer["version"] == "fake" and report.fer["frames"] == 4 and report.fer["clip"] == str(clip)
    assert report.fer_ratio == pytest.approx(report.fps / 2.0)
    assert "fer fake" in report.table() and "against 400.00 ms" in report.table()
    assert report.to_dict()["fer_ratio"] > 0


def test_fer_asked_for_but_missing_is_a_clear_error(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(bench_module, "fer_available", lambda python=None: False)
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(3), fps=10.0)
    with pytest.raises(ConfigError, match="fer package is not importable"):
        benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=1, warmup_frames=0, fer=True))
    # by default it is simply skipped
    report = benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=1, warmup_frames=0))
    assert report.fer is None and report.fer_ratio is None


def test_bench_help_lists_the_options():
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--model-dir", "--variant", "--threads", "--detector", "--frames", "--warmup", "--no-draw",
        "--no-encode", "--no-events", "--faces", "--fer", "--json", "--decode-ahead", "--baseline",
        "--workers", "--realtime", "--no-overlap", "--decode-threads", "--detector-engine",
        "--caller-works", "--dedicated-workers",
    ):  # fmt: skip
        assert flag in result.output


def test_the_full_range_model_is_reported_untrimmed(tmp_path, tiny_model_dir):
    """--trim-letterbox with the full-range model: the report says what ran, a whole square input."""
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(3), fps=10.0)
    report = benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=3, warmup_frames=1, fer=False,
                                    detector="full", detector_engine="litert", trim_letterbox=True))
    assert report.settings["detector"] == "full" and report.settings["trim_letterbox"] is False
    assert "detector full on litert, model threads" in report.table()


def test_bench_cli_prints_the_table_and_writes_json(tmp_path, tiny_model_dir):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(3), fps=10.0)
    args = ["bench", str(clip), "--model-dir", str(tiny_model_dir), "--frames", "3", "--warmup", "1", "--no-fer"]
    result = CliRunner().invoke(cli, [*args, "--threads", "1", "--events", "--workers", "3", "--detector-engine",
                                      "litert", "--trim-letterbox", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert "FPS" in result.output and "decode" in result.output and "b.json" in result.output
    assert "3 worker(s)" in result.output and "detector short on litert, letterbox trimmed" in result.output
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["settings"]["model_threads"] == 1 and data["settings"]["events"] is True
    assert data["settings"]["workers"] == 3 and data["settings"]["overlap"] is True
    assert data["settings"]["detector_engine"] == "litert" and data["settings"]["trim_letterbox"] is True
    assert data["settings"]["decode_threads"] == 1 and "(1 FFmpeg thread)" in result.output
    assert data["settings"]["caller_works"] is True and "the main thread and 2 more" in result.output
    pinned = worker_cores(3)  # 3 litert workers: pinned where they occupy every core (edge.cores)
    assert data["settings"]["worker_cores"] == (list(pinned) if pinned else None)
    assert ("workers keep to cores" in result.output) is bool(pinned)
    dedicated = CliRunner().invoke(cli, [*args, "--dedicated-workers", "--json", str(tmp_path / "d.json")])
    assert dedicated.exit_code == 0, dedicated.output
    assert "2 workers (threads of their own, --dedicated-workers" in dedicated.output
    assert json.loads((tmp_path / "d.json").read_text())["settings"]["caller_works"] is False
    ffmpeg_choice = CliRunner().invoke(cli, [*args, "--decode-threads", "0", "--json", str(tmp_path / "c.json")])
    assert ffmpeg_choice.exit_code == 0, ffmpeg_choice.output
    assert "FFmpeg's own threads" in ffmpeg_choice.output
    assert json.loads((tmp_path / "c.json").read_text())["settings"]["decode_threads"] is None
    to_stdout = CliRunner().invoke(cli, [*args, "--json", "-"])
    assert to_stdout.exit_code == 0, to_stdout.output
    assert json.loads(to_stdout.output)["frames"] == 3


def test_bench_cli_errors_are_one_line(tmp_path, tiny_model_dir):
    result = CliRunner().invoke(cli, ["bench", str(tmp_path / "none.mp4"), "--model-dir", str(tiny_model_dir)])
    assert result.exit_code == 2 and "does not exist" in result.output
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    result = CliRunner().invoke(cli, ["bench", str(not_video), "--model-dir", str(tiny_model_dir), "--no-fer"])
    assert result.exit_code == 1 and "Traceback" not in result.output and "not a video" in result.output
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(3), fps=10.0)
    args = ["bench", str(clip), "--model-dir", str(tiny_model_dir), "--realtime", "--baseline"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "Traceback" not in result.output and "realtime" in result.output


def test_a_json_file_that_cannot_be_written_is_refused_before_the_benchmark(tmp_path, tiny_model_dir, monkeypatch):
    import edge.bench

    ran = []
    monkeypatch.setattr(edge.bench, "benchmark", lambda options: ran.append(options))
    (tmp_path / "a_file").write_text("x")
    for target, says in (("", "is not a file name"), (str(tmp_path), "is not a file name"),
                         (str(tmp_path / "a_file" / "b.json"), "is not a writable folder")):
        result = CliRunner().invoke(cli, ["bench", "--model-dir", str(tiny_model_dir), "--json", target])
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    assert ran == []


def test_a_report_that_cannot_be_saved_is_a_sink_error(tmp_path):
    from edge.benchreport import BenchReport, StageStats

    frame = StageStats.from_seconds("frame", np.array([0.002]))
    report = BenchReport(settings={}, machine={}, versions={}, stages=(frame,), latency=frame, other=frame,
                         frames=1, elapsed_s=0.002, faces_per_frame=1.0, face_counts={1: 1}, cpu={})
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SinkError, match="cannot write the benchmark report"):
        report.save(tmp_path / "a_file" / "b.json")
    assert json.loads(report.save(tmp_path / "new" / "b.json").read_text())["frames"] == 1


@pytest.mark.slow
def test_a_clip_whose_face_comes_too_late_to_tile_is_named_itself(tmp_path, media, tiny_model_dir, monkeypatch):
    import edge.benchclips

    monkeypatch.setattr(edge.benchclips, "MIN_PLAY_FRAMES", 30)  # the real value (conftest lowers it)
    capture = cv2.VideoCapture(str(media / "single_face.mp4"))
    faces = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(10)]
    capture.release()
    blank = np.full_like(faces[0], 90)
    clip = write_video(tmp_path / "late_face.mp4", [blank] * 40 + faces, fps=25.0)
    with pytest.raises(SourceError, match="late_face.mp4: too few frames from its first face on to tile"):
        benchmark(BenchOptions(source=clip, model_dir=tiny_model_dir, frames=50, warmup_frames=5, faces=1, fer=False))
