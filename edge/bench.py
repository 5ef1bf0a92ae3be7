"""``benchmark``: frames per second of the real runtime on a clip, stage by stage; what ``ers bench`` calls.

It builds the pipeline ``ers run`` builds (``Pipeline.from_options``), feeds
it the frames of a clip decoded by the real ``VideoFileSource`` (played in a
loop to reach the frame count), and times every stage of every frame after a
warm-up: the stages inside ``Pipeline.process`` through its ``timings`` hook,
drawing and encoding through ``VideoFileSink.render`` / ``write_image``,
events through ``JsonlSink.write``. Outputs go to a temporary folder that is
removed afterwards.

    report = benchmark(BenchOptions(model_dir="exports/m", variant="int8"))
    print(report.table())
    report.save("bench.json")        # machine, versions and settings included

Wall-clock numbers depend on what else the machine runs; ``cpu_ms_per_frame``
(CPU time of the whole process per frame) is steadier, and the machine's
load average is recorded with every run. Compare runs on the same machine.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from edge.benchclips import MIN_PLAY_FRAMES, LoopedClip, sample_clip, write_tiled_faces_clip
from edge.benchreport import BenchReport, StageStats, machine_info, process_threads, versions
from edge.cores import pinned
from edge.detector import DetectorEngine, DetectorModelName, FaceDetectorOptions, _enum_value
from edge.errors import ConfigError, SourceError
from edge.model_spec import ModelSpec
from edge.pipeline import (
    WORKERS,
    Pipeline,
    PipelineOptions,
    overlap_for,
    resolve_model_dir,
)
from edge.sources import DECODE_THREADS, RUNTIME_OPENCV_THREADS, decode_ahead_for, opencv_threads
from edge.types import FaceDetection, Frame, FrameResult, SourceKind

STAGES = ("decode", "detect", "preprocess", "classify", "track", "draw", "encode", "events")
MAX_FACES = 36
BASELINE_BLOCK_FRAMES = 200  # an overlapped --baseline alternates blocks of this many frames with the pipeline's
_FER_RUNNER = Path(__file__).resolve().parent / "_fer_runner.py"


def _whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}; got {value!r}")


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """What to benchmark. The defaults measure the core runtime, headless.

    ``source`` None is the sample clip (``benchclips.sample_clip``);
    ``model_dir`` / ``variant`` None mean what ``ers run`` uses (the shipped
    model, the manifest's variant); ``num_threads`` is each worker's emotion
    model's and LiteRT detector's (None: as ``ers run`` does,
    ``pipeline.model_threads_for``);
    ``detector_engine`` runs the face detector (``detector.DetectorEngine``),
    on just the part of its input that holds the frame with ``trim_letterbox``
    (``FaceDetectorOptions``);
    ``decode_ahead`` is the video source's (0: decode in the pipeline's
    thread; None: as ``ers run`` does, ``sources.decode_ahead_for``) and
    ``decode_threads`` its FFmpeg threads (None: FFmpeg's choice);
    ``overlap`` decodes, detects and classifies the next frames on
    ``workers`` workers, the main thread the first of them when
    ``caller_works``, and hands frames on as ``ers run`` does
    (``Pipeline.deliver``); None picks as
    ``ers run`` does (``pipeline.overlap_for``): overlapped, except
    ``realtime``, which plays a live source. ``draw``, ``encode`` and
    ``events`` add the annotated video and ``events.jsonl`` of ``ers run``
    (written to a temporary folder). ``faces`` N benchmarks a clip whose
    frames hold N copies of the source's face. ``baseline`` also times decode
    + detect alone (the same source and detector objects, no classifier,
    tracking or outputs), on every other frame (with ``overlap``: in blocks of
    ``BASELINE_BLOCK_FRAMES`` between blocks of the pipeline's frames, on the
    same workers), to show what the rest of the pipeline adds. ``fer``
    compares with the ``fer`` package on the same clip (None: when
    ``fer_python``, default this Python, can import it).
    """

    source: Path | None = None
    model_dir: Path | None = None
    variant: str | None = None
    num_threads: int | None = None
    detector: DetectorModelName = DetectorModelName.SHORT
    detector_engine: DetectorEngine = DetectorEngine.MEDIAPIPE
    trim_letterbox: bool = False
    decode_ahead: int | None = None
    decode_threads: int | None = DECODE_THREADS
    overlap: bool | None = None
    workers: int = WORKERS
    caller_works: bool = True
    frames: int = 300
    warmup_frames: int = 30
    draw: bool = False
    encode: bool = False
    events: bool = False
    faces: int | None = None
    baseline: bool = False
    fer: bool | None = None
    fer_python: Path | None = None
    fer_frames: int = 20
    realtime: bool = False

    @property
    def overlapped(self) -> bool:
        """``overlap``, or when None what ``ers run`` picks: overlapped unless frames come at camera rate."""
        return overlap_for(SourceKind.LIVE if self.realtime else SourceKind.VIDEO, self.overlap)

    @property
    def decode_ahead_frames(self) -> int:
        """Frames the clip decodes ahead on a thread of its own; paced frames are decoded as they
        arrive (decoding ahead would hide it from their latency)."""
        if self.realtime:
            return 0
        return decode_ahead_for(self.overlapped) if self.decode_ahead is None else self.decode_ahead

    @property
    def worker_count(self) -> int:
        """Worker threads the pipeline runs: ``workers`` when overlapped, else none but the caller."""
        return self.workers if self.overlapped else 1

    def detector_options(self) -> FaceDetectorOptions:
        """The face detector's options for the clip (a video): model, engine and letterbox."""
        return FaceDetectorOptions(
            model=self.detector, engine=self.detector_engine, trim_letterbox=self.trim_letterbox
        ).resolve(SourceKind.VIDEO)

    @property
    def alternate_baseline(self) -> bool:
        """Whether the baseline runs on every other frame (sequential runs) rather than in blocks."""
        return self.baseline and not self.overlapped

    def __post_init__(self) -> None:
        for name in ("source", "model_dir", "fer_python"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "detector", _enum_value(DetectorModelName, "detector", self.detector))
        object.__setattr__(
            self, "detector_engine", _enum_value(DetectorEngine, "detector_engine", self.detector_engine)
        )
        self.detector_options()  # a setting the detector refuses is refused now, not when the run starts
        _whole("frames", self.frames, 1)
        _whole("warmup_frames", self.warmup_frames, 0)
        _whole("fer_frames", self.fer_frames, 1)
        _whole("workers", self.workers, 1)
        if self.decode_ahead is not None:
            _whole("decode_ahead", self.decode_ahead, 0)
        for name in ("num_threads", "decode_threads"):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), 1)
        if self.faces is not None:
            _whole("faces", self.faces, 1)
            if self.faces > MAX_FACES:
                raise ConfigError(f"faces must be at most {MAX_FACES}; got {self.faces}")
        if not isinstance(self.caller_works, bool):
            raise ConfigError(f"caller_works must be True or False; got {self.caller_works!r}")
        if self.realtime and (self.baseline or self.fer):
            raise ConfigError("realtime measures latency at the clip's frame rate; the baseline and fer "
                              "compare frames per second: run them without realtime")


def benchmark(options: BenchOptions | None = None) -> BenchReport:
    """Run the real pipeline on ``options.source`` and time it stage by stage."""
    options = options or BenchOptions()
    source = options.source if options.source is not None else sample_clip()
    model_dir = resolve_model_dir(options.model_dir)
    spec = ModelSpec.load(model_dir)
    variant = spec.variant(options.variant)
    variant_name = next(name for name, value in spec.variants.items() if value is variant)
    detector_options = options.detector_options()
    machine = machine_info()  # load average before the run starts
    with opencv_threads(RUNTIME_OPENCV_THREADS), tempfile.TemporaryDirectory(prefix="ers-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        if options.alternate_baseline:  # a baseline frame after each frame, warm-up included
            total = 2 * (options.warmup_frames + options.frames)
        else:
            total = options.warmup_frames + options.frames * (2 if options.baseline else 1)
        clip_path = source
        if options.faces is not None:
            LoopedClip(source, total)  # the source too short to loop is named as itself, not as the tiled copy
            clip_path = write_tiled_faces_clip(source, options.faces, scratch / f"faces{options.faces}.mp4",
                                               detector_options)
        try:
            clip = LoopedClip(clip_path, total, decode_ahead=options.decode_ahead_frames,
                              decode_threads=options.decode_threads)
        except SourceError:
            if clip_path == source:
                raise
            raise SourceError(  # the tiled copy starts at the first frame with a face
                f"{source}: too few frames from its first face on to tile and play in a loop (at least "
                f"{MIN_PLAY_FRAMES}); pass a clip that shows a face sooner"
            ) from None
        pipeline_options = PipelineOptions(
            model_dir=model_dir, variant=variant_name, detector=detector_options, num_threads=options.num_threads,
            workers=options.worker_count, caller_works=options.caller_works,
        )
        kind = SourceKind.LIVE if options.realtime else SourceKind.VIDEO  # realtime plays the clip as a camera
        with Pipeline.from_options(pipeline_options, kind) as pipeline:
            model_threads, worker_cores = pipeline.model_threads, pipeline.cores
            trims_letterbox = pipeline.trims_letterbox
            measured = _measure(pipeline, clip, options, scratch)
        fer = _run_fer(options, clip_path, scratch)
    stage_seconds, latency, faces, elapsed, cpu_s, threads, baseline_seconds, baseline_wall_s = measured
    enabled = {"draw": options.draw, "encode": options.encode, "events": options.events}
    stages = tuple(
        StageStats.from_seconds(name, stage_seconds[:, index], enabled.get(name, True))
        for index, name in enumerate(STAGES)
    )
    other = latency - stage_seconds.sum(axis=1)
    counts, frequency = np.unique(faces, return_counts=True)
    notes = []
    if clip.reopen_s:
        notes.append(
            f"the clip was played {len(clip.reopen_s) + 1} times; re-opening it "
            f"({1000.0 * float(np.mean(clip.reopen_s)):.1f} ms each) is not counted"
        )
    if options.alternate_baseline:
        notes.append("frames alternate between the pipeline and the decode + detect baseline")
    elif options.baseline:
        notes.append(f"blocks of {BASELINE_BLOCK_FRAMES} frames alternate between the pipeline and the decode + "
                     "detect baseline")
    if options.overlapped and options.workers > 1:
        who = (f"the main thread and {options.workers - 1} more" if options.caller_works
               else "threads of their own, --dedicated-workers")
        notes.append(f"frames are decoded, detected, classified, tracked and written by {options.workers} workers "
                     f"({who}; --overlap), each frame by the worker that finished it once the frames before it "
                     "are: its latency includes that wait")
    elif options.overlapped:
        notes.append("decode, detect and classify of the next frames run on a worker thread beside tracking "
                     "(--overlap); a frame's latency includes its waits for the busy threads")
    if worker_cores is not None:
        where = (f"core {worker_cores[0]}" if len(worker_cores) == 1
                 else f"cores {', '.join(map(str, worker_cores))}, one each")
        notes.append(f"workers keep to {where}, with the threads their face detector starts (edge.cores: "
                     "together they occupy every usable core)")
    if options.faces is not None and faces.mean() < 0.9 * options.faces:
        hint = "need the full-range model: --detector full" if detector_options.model.value == "short" else "are missed"
        found = f"the detector found {faces.mean():.2f} of the {options.faces} tiled faces per frame"
        notes.append(f"{found}; smaller faces {hint}")
    if options.realtime:
        notes.append(f"frames arrive at the clip's {clip.fps:.1f} FPS, as a camera's do, and are decoded then: the "
                     "frames per second are that rate, and each frame's latency runs from its arrival to its result")
    if clip.skipped_frames:
        notes.append(f"{clip.skipped_frames} undecodable frame(s) skipped")
    return BenchReport(
        settings={
            "source": str(source),
            "clip": str(clip_path) if options.faces is None else f"{source} tiled {options.faces}x",
            "frame_size": f"{clip.frame_size[0]}x{clip.frame_size[1]}",
            "source_fps": round(clip.fps, 3),
            "faces": options.faces,
            "baseline": options.baseline,
            "model_dir": str(model_dir),
            "variant": variant_name,
            "variant_file": variant.file,
            "quantization": variant.quantization,
            "model_threads": model_threads,
            "detector": detector_options.model.value,
            "detector_engine": detector_options.engine.value,
            "trim_letterbox": trims_letterbox,  # what the detector did: the full-range model is never trimmed
            "decode_ahead": clip.decode_ahead,
            "decode_threads": clip.decode_threads,
            "overlap": options.overlapped,
            "workers": options.worker_count,
            "caller_works": options.caller_works,
            "worker_cores": list(worker_cores) if worker_cores is not None else None,
            "frames": options.frames,
            "warmup_frames": options.warmup_frames,
            "draw": options.draw,
            "encode": options.encode,
            "events": options.events,
            "realtime": options.realtime,
        },
        machine=machine,
        versions=versions(),
        stages=stages,
        latency=StageStats.from_seconds("frame", latency),
        other=StageStats.from_seconds("other", other),
        frames=options.frames,
        elapsed_s=elapsed,
        faces_per_frame=float(faces.mean()),
        face_counts={int(count): int(number) for count, number in zip(counts, frequency)},
        baseline=_baseline_summary(baseline_seconds, baseline_wall_s) if options.baseline else None,
        cpu={
            "cpu_s": round(cpu_s, 4),
            "cpu_ms_per_frame": round(1000.0 * cpu_s / options.frames, 4),
            "cores_busy": round(cpu_s / elapsed, 3) if elapsed > 0 else 0.0,
            "process_threads": threads,
            "opencv_threads": RUNTIME_OPENCV_THREADS,
        },
        fer=fer,
        notes=tuple(notes),
    )


class _Measured(NamedTuple):
    stage_seconds: np.ndarray  # (frames, len(STAGES))
    latency: np.ndarray  # seconds per frame, decode to last stage
    faces: np.ndarray  # faces per frame
    elapsed_s: float
    cpu_s: float
    threads: int  # threads of the process while the pipeline runs
    baseline_seconds: np.ndarray  # (frames, 2): decode, detect of the baseline frames
    baseline_wall_s: float  # wall time of the baseline frames


@dataclass
class _Baseline:
    """Decode and detect seconds of each baseline frame, and the wall and CPU seconds of its blocks."""

    seconds: np.ndarray  # (frames, 2)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    filled: int = 0


def _measure(pipeline: Pipeline, clip: LoopedClip, options: BenchOptions, scratch: Path) -> _Measured:
    """Run warm-up and timed frames: per-frame stage seconds, latency and faces, wall and CPU
    seconds, and (``options.baseline``) decode and detect seconds of the baseline frames.

    Sequentially, a baseline alternates frames: one through the whole pipeline,
    the next decoded and detected only, so both see the same load on a busy
    machine; the pipeline's wall time is then the sum of its frames'
    latencies. With ``overlap`` blocks of frames alternate, and the baseline's
    wall and CPU time is taken out of the pipeline's. The time spent
    re-opening the looped clip is taken out of decode, latency and wall time.
    """
    from edge.sinks import JsonlSink, VideoFileSink

    perf_counter = time.perf_counter
    frames = options.frames
    stage_seconds = np.zeros((frames, len(STAGES)))
    latency = np.zeros(frames)
    faces = np.zeros(frames, np.int64)
    baseline = _Baseline(np.zeros((frames if options.baseline else 0, 2)))
    timings: dict[str, float] = {}
    pipeline.timings = timings
    video = VideoFileSink(scratch / "annotated.mp4", clip.fps) if options.draw or options.encode else None
    events = JsonlSink(scratch / "events.jsonl") if options.events else None
    draw, encode = options.draw, options.encode
    alternate = options.alternate_baseline
    arrivals: dict[int, float] | None = {} if options.realtime else None
    frames_in = clip if arrivals is None else _paced(clip, clip.fps, arrivals)
    elapsed = cpu_s = baseline_wall_s = 0.0
    threads = 0
    indices = itertools.count(-options.warmup_frames)
    wall_start = cpu_start = reopen_start = reopen_cpu_start = 0.0

    def handle(frame: Frame, result: FrameResult) -> None:
        """Draw, encode and write one frame's result as asked, and record its times."""
        nonlocal wall_start, cpu_start, reopen_start, reopen_cpu_start, threads
        index = next(indices)
        processed = drawn = perf_counter()
        image = None
        if draw:
            image = video.render(frame, result)
            drawn = perf_counter()
        encoded = drawn
        if encode:
            video.write_image(image if image is not None else cv2.cvtColor(frame.image_rgb, cv2.COLOR_RGB2BGR))
            encoded = perf_counter()
        written = encoded
        if events is not None:
            events.write(frame, result)
            written = perf_counter()
        if index >= 0:
            reopen = clip.reopen_at.get(frame.index, 0.0)  # the file opened again: not decoding
            row = stage_seconds[index]
            started = timings["started"] if arrivals is None else arrivals[frame.index]
            row[0] = timings["started"] + timings["decode"] - started - reopen
            row[1:5] = timings["detect"], timings["preprocess"], timings["classify"], timings["track"]
            row[5:8] = drawn - processed, encoded - drawn, written - encoded
            latency[index] = written - started - reopen
            faces[index] = len(result.faces)
        if index == -1:  # the last warm-up frame is out: the timed frames start now
            wall_start, cpu_start, reopen_start = perf_counter(), time.process_time(), clip.reopen_total_s
            reopen_cpu_start = clip.reopen_cpu_s
            if arrivals is not None:  # paced: from its arrival, so the window holds one interval per frame
                wall_start = arrivals[frame.index]
        if index == frames - 1:
            threads = process_threads()  # while the workers still run

    try:
        wall_start, cpu_start, reopen_start = perf_counter(), time.process_time(), clip.reopen_total_s
        reopen_cpu_start = clip.reopen_cpu_s
        _run_timed(pipeline, frames_in, clip, options, baseline if options.baseline else None, handle)
        elapsed = perf_counter() - wall_start - (clip.reopen_total_s - reopen_start)
        cpu_s = time.process_time() - cpu_start - (clip.reopen_cpu_s - reopen_cpu_start)
        if alternate:
            elapsed = float(latency.sum())
            baseline_wall_s = float(baseline.seconds.sum())
            cpu_s *= elapsed / (elapsed + baseline_wall_s)  # the pipeline's share, by time
        elif options.baseline:  # its blocks ran between the pipeline's, in the timed window
            baseline_wall_s = baseline.wall_s
            elapsed -= baseline.wall_s
            cpu_s -= baseline.cpu_s
    finally:
        pipeline.timings = None
        if video is not None:
            video.close()
        if events is not None:
            events.close()
    return _Measured(stage_seconds, latency, faces, elapsed, cpu_s, threads, baseline.seconds, baseline_wall_s)


def _paced(frames: Iterable[Frame], fps: float, arrivals: dict[int, float]) -> Iterator[Frame]:
    """``frames`` arriving at ``fps`` as a camera's do, each read (decoded) only once it has arrived;
    ``arrivals`` gets when each arrived, by frame index."""
    interval = 1.0 / fps
    iterator = iter(frames)
    due = time.perf_counter()
    while True:
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        arrived = time.perf_counter()
        frame = next(iterator, None)
        if frame is None:
            return
        arrivals[frame.index] = arrived
        yield frame
        due = max(due, arrived) + interval  # late frames do not bunch up: a camera keeps its rate


def _run_timed(
    pipeline: Pipeline,
    frames: Iterable[Frame],
    clip: LoopedClip,
    options: BenchOptions,
    baseline: _Baseline | None,
    handle: Callable[[Frame, FrameResult], None],
) -> None:
    """Hand the pipeline's ``(frame, result)`` for ``frames`` (those of ``clip``, maybe paced) to
    ``handle``, as ``ers run`` does (``Pipeline.deliver``), with ``decode`` and ``started`` in its
    timings.

    ``baseline``: sequentially, after each pipeline frame, decode and detect
    one more frame alone and record its seconds there; overlapped, blocks of
    frames decoded and detected alone between blocks of the pipeline's
    (``_with_baseline_blocks``).
    """
    if options.overlapped:
        if baseline is None:
            pipeline.deliver(frames, handle, overlap=True)
        else:
            _with_baseline_blocks(pipeline, frames, clip, options, baseline, handle)
        return
    perf_counter = time.perf_counter
    timings = pipeline.timings
    iterator = iter(frames)
    core = pipeline.cores[0] if pipeline.cores else None

    def detect(frame: Frame) -> Sequence[FaceDetection]:
        with pinned(core):  # where the pipeline's frames are detected
            return pipeline.detector.detect(frame)

    for index in range(-options.warmup_frames, options.frames):
        started = perf_counter()
        frame = next(iterator)
        decoded = perf_counter()
        result = pipeline.process(frame)
        timings["decode"], timings["started"] = decoded - started, started
        handle(frame, result)
        if baseline is not None:
            seconds = _decode_and_detect(iterator, detect, clip)
            if index >= 0:
                baseline.seconds[index] = seconds


def _with_baseline_blocks(
    pipeline: Pipeline, frames: Iterable[Frame], clip: LoopedClip, options: BenchOptions, baseline: _Baseline,
    handle: Callable[[Frame, FrameResult], None],
) -> None:
    """The overlapped pipeline's frames handed to ``handle`` in blocks of ``BASELINE_BLOCK_FRAMES``
    (the first with the warm-up too), each followed by as many frames decoded and detected alone,
    the way the pipeline does (with all its detectors, on the same workers): both see the machine in
    the same state, where a baseline run after the pipeline's saw it seconds later. Each block starts
    and ends its workers; the pipeline's tracks carry over the gaps.
    """
    from edge.overlap import processed_ahead

    iterator = iter(frames)
    detects = [detector.detect for detector, _ in pipeline.workers]
    perf_counter = time.perf_counter
    warmup = options.warmup_frames
    while baseline.filled < len(baseline.seconds):
        count = min(BASELINE_BLOCK_FRAMES, len(baseline.seconds) - baseline.filled)
        pipeline.deliver(itertools.islice(iterator, warmup + count), handle, overlap=True)
        warmup = 0
        rows = baseline.seconds[baseline.filled:baseline.filled + count]
        start, cpu_start, reopen_start = perf_counter(), time.process_time(), clip.reopen_total_s
        reopen_cpu_start = clip.reopen_cpu_s
        items = processed_ahead(itertools.islice(iterator, count), detects, in_caller=pipeline.caller_works,
                                cores=pipeline.cores)
        try:
            for row, item in zip(rows, items):
                row[:] = item.decode_s - clip.reopen_at.get(item.frame.index, 0.0), item.work_s
        finally:
            items.close()
        baseline.wall_s += perf_counter() - start - (clip.reopen_total_s - reopen_start)
        baseline.cpu_s += time.process_time() - cpu_start - (clip.reopen_cpu_s - reopen_cpu_start)
        baseline.filled += count


def _decode_and_detect(iterator: Iterator[Frame], detect, clip: LoopedClip) -> tuple[float, float]:
    """Seconds to decode the next frame (less any re-opening of ``clip``) and to detect its faces."""
    start = time.perf_counter()
    frame = next(iterator)
    decoded = time.perf_counter()
    detect(frame)
    return decoded - start - clip.reopen_at.get(frame.index, 0.0), time.perf_counter() - decoded


def _baseline_summary(seconds: np.ndarray, wall_s: float) -> dict[str, Any]:
    return {
        "fps": round(len(seconds) / wall_s, 2) if wall_s > 0 else 0.0,
        "decode_ms": round(1000.0 * float(seconds[:, 0].mean()), 4),
        "detect_ms": round(1000.0 * float(seconds[:, 1].mean()), 4),
        "frame_ms_p50": round(1000.0 * float(np.percentile(seconds.sum(axis=1), 50)), 4),
        "frame_ms_p95": round(1000.0 * float(np.percentile(seconds.sum(axis=1), 95)), 4),
    }


def fer_available(python: Path | None = None) -> bool:
    """Whether ``python`` (default: this one) can import the ``fer`` package."""
    if python is None:
        return importlib.util.find_spec("fer") is not None
    check = "import importlib.util, sys; sys.exit(importlib.util.find_spec('fer') is None)"
    try:
        return subprocess.run([str(python), "-c", check], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _run_fer(options: BenchOptions, clip: Path, scratch: Path) -> dict[str, Any] | None:
    """fer's numbers on ``clip``, in a separate process (fer imports TensorFlow); None when skipped."""
    if options.fer is False or options.realtime:
        return None
    available = fer_available(options.fer_python)
    if not available:
        if options.fer:
            raise ConfigError(
                f"the fer package is not importable by {options.fer_python or sys.executable}; "
                "install it there (pip install fer) or pass --fer-python PATH of a Python that has it"
            )
        return None
    python = str(options.fer_python or sys.executable)
    # Run as -c text from a scratch folder: by path, edge/ would come first on sys.path and
    # edge/types.py would hide the standard library's types module.
    code = _FER_RUNNER.read_text(encoding="utf-8")
    command = [python, "-c", code, str(Path(clip).resolve()), str(options.fer_frames), "3"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=scratch)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        message = f"fer failed on {clip} (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        if options.fer:
            raise ConfigError(message)
        warnings.warn(message, stacklevel=2)
        return None
    return json.loads(lines[-1])
