"""``run``: a source through the pipeline into the outputs; what ``ers run`` calls.

Writes into ``out_dir``: ``events.jsonl`` (one line per frame), the
annotated frames (``annotated.mp4``, or ``annotated/*.png`` for image
sources) and ``summary.json`` (per-track summary and run statistics), and
optionally shows a live window. Ctrl-C (``KeyboardInterrupt``) ends the run
like the end of the source: every output is finalised and the report says
``stop_reason="interrupted"``. ``handle_sigterm()`` makes SIGTERM do the same.

The annotated video is written at the source's nominal frame rate; for a
camera that drops stale frames it therefore plays faster than real time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.detector import FaceDetectorOptions
from edge.errors import ConfigError, SinkError
from edge.folders import make_folder
from edge.model_spec import ModelSpec, VariantSpec
from edge.pipeline import Pipeline, PipelineOptions, overlap_for, resolve_model_dir
from edge.sinks import (
    ImageDirSink,
    JsonlSink,
    StopRequested,
    SummarySink,
    VideoFileSink,
    WindowSink,
    display_available,
)
from edge.sources import (
    RUNTIME_OPENCV_THREADS,
    Source,
    VideoFileSource,
    decode_ahead_for,
    open_source,
    opencv_threads,
)
from edge.types import Frame, FrameResult, SourceKind, TrackSummary

EVENTS_NAME = "events.jsonl"
VIDEO_NAME = "annotated.mp4"
IMAGES_DIR_NAME = "annotated"
SUMMARY_NAME = "summary.json"
RUN_OUTPUTS = (EVENTS_NAME, VIDEO_NAME, IMAGES_DIR_NAME, SUMMARY_NAME)
DEFAULT_RUNS_DIR = Path("runs")

logger = logging.getLogger(__name__)


class _EnoughFrames(Exception):
    """Raised after the ``max_frames``-th frame is written: the run stops there."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by ``handle_sigterm`` to end a run cleanly."""


@contextlib.contextmanager
def handle_sigterm() -> Iterator[None]:
    """While active, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) in the main thread.

    Only the first one: a second SIGTERM while the run writes its outputs is
    ignored, so the outputs are not cut short.
    """
    received: list[int] = []

    def _raise(signum: int, stack: object) -> None:
        if received:
            logger.warning("signal %d again: still writing the outputs", signum)
            return
        received.append(signum)
        raise Terminated(f"received signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        # None: the previous handler was not set from Python; it cannot be restored, so the default is.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Outputs of a run. ``display`` None shows a window when a display is available.

    An ``out_dir`` holding an earlier run's outputs is refused unless
    ``overwrite``, which replaces them (and nothing else): they are set aside
    when the source and models are open, deleted once the run writes its
    first frame, and put back when it fails or is stopped before that (the
    report then names no outputs).

    ``overlap`` reads, detects and classifies the next frames on worker
    threads (``pipeline.workers`` of them), each of which then tracks and
    writes the frames it finished, in order (``Pipeline.deliver``; with a
    window, the calling thread writes them: ``Pipeline.frames_and_results``);
    without it every stage runs in the caller's thread. None (the default)
    overlaps files and not cameras or streams (``pipeline.overlap_for``).
    """

    out_dir: Path | None = None  # None: a new folder runs/edge-<date>-<time> (new_run_dir)
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    video: bool = True
    events: bool = True
    display: bool | None = None
    max_frames: int | None = None
    overlap: bool | None = None  # None: overlapped for files, not for live sources (overlap_for)
    overwrite: bool = False  # replace the outputs of an earlier run in out_dir (other files stay)

    def __post_init__(self) -> None:
        if self.out_dir is not None:
            if not isinstance(self.out_dir, (str, os.PathLike)):
                raise ConfigError(f"out_dir must be a folder path or None; got {self.out_dir!r}")
            object.__setattr__(self, "out_dir", Path(self.out_dir))
        if not isinstance(self.pipeline, PipelineOptions):
            raise ConfigError(f"pipeline must be a PipelineOptions; got {self.pipeline!r}")
        for name in ("video", "events", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False; got {getattr(self, name)!r}")
        for name in ("display", "overlap"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True, False or None; got {getattr(self, name)!r}")
        if self.max_frames is not None and (
            isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int) or self.max_frames < 1
        ):
            raise ConfigError(f"max_frames must be a whole number >= 1 or None; got {self.max_frames!r}")


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """What a run did; ``summary()`` is the text ``ers run`` prints."""

    source: str
    source_kind: SourceKind
    model_dir: str
    variant: str
    detector_model: str
    detector_engine: str
    trim_letterbox: bool
    labels: tuple[str, ...]
    frames: int
    frames_with_faces: int
    faces: int
    skipped_frames: int
    dropped_frames: int
    elapsed_s: float
    stop_reason: str  # "end", "max_frames", "quit", "interrupted" or "terminated"
    tracks: tuple[TrackSummary, ...]
    outputs: dict[str, str]

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def interrupted(self) -> bool:
        return self.stop_reason in ("interrupted", "terminated")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_kind": self.source_kind.value,
            "model_dir": self.model_dir,
            "variant": self.variant,
            "detector_model": self.detector_model,
            "detector_engine": self.detector_engine,
            "trim_letterbox": self.trim_letterbox,
            "labels": list(self.labels),
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "faces": self.faces,
            "skipped_frames": self.skipped_frames,
            "dropped_frames": self.dropped_frames,
            "elapsed_s": round(self.elapsed_s, 3),
            "fps": round(self.fps, 2),
            "stop_reason": self.stop_reason,
            "tracks": [track.to_dict(self.labels) for track in self.tracks],
            "outputs": dict(self.outputs),
        }

    def save(self, path: Path) -> Path:
        path = Path(path)
        try:
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise SinkError(f"cannot write the run summary {path}: {error}") from None
        return path

    def summary(self) -> str:
        lines = [
            f"{self.source} ({self.source_kind.value}): {self.frames} frames in {self.elapsed_s:.1f} s "
            f"({self.fps:.1f} FPS), faces in {self.frames_with_faces} frames, {len(self.tracks)} track(s)"
            + (f"; stopped: {self.stop_reason}" if self.stop_reason != "end" else ""),
        ]
        if self.skipped_frames:
            lines.append(f"  skipped {self.skipped_frames} unreadable frame(s)")
        if self.dropped_frames:
            lines.append(f"  dropped {self.dropped_frames} stale camera frame(s) to stay real-time")
        for track in self.tracks:
            confidence = max(track.mean_smoothed_probs) if track.mean_smoothed_probs else 0.0
            lines.append(
                f"  track {track.track_id}: {track.dominant_label:<10} frames {track.first_frame}-"
                f"{track.last_frame} (seen in {track.frames_seen}), mean top probability {confidence:.2f}"
            )
        for name, path in self.outputs.items():
            lines.append(f"  {name}: {path}")
        return "\n".join(lines)


def run(source: str | int | Path, options: RunOptions) -> RunReport:
    """Run the pipeline on ``source`` (see ``open_source``) and write the outputs of ``options``."""
    if not isinstance(options, RunOptions):
        raise ConfigError(f"run() takes its settings as RunOptions; got {options!r}")
    model_dir = resolve_model_dir(options.pipeline.model_dir)  # fail on a missing model before a camera opens
    spec = ModelSpec.load(model_dir)
    variant = spec.variant(options.pipeline.variant)
    if options.out_dir is None:
        options = replace(options, out_dir=new_run_dir(DEFAULT_RUNS_DIR))
        created = True
    else:
        if _reads_an_output(source, options.out_dir):
            raise ConfigError(f"the source {source} is an output of the run in {options.out_dir}, which this "
                              "run would replace; write into another --out-dir")
        created = _make_out_dir(options.out_dir, options.overwrite)
    try:
        return _run_into(source, options, model_dir, variant)
    except BaseException:
        if created:  # a run that wrote nothing leaves no empty folder behind
            with contextlib.suppress(OSError):
                options.out_dir.rmdir()  # fails when the folder holds anything
        raise


def _reads_an_output(source: str | int | Path, out_dir: Path) -> bool:
    """Whether ``source`` is a file or folder among the outputs a run writes into ``out_dir``."""
    text = str(source).strip()
    if isinstance(source, int) or not text or text.isdigit() or "://" in text:
        return False
    path = Path(text).expanduser().resolve()
    outputs = [(out_dir / name).resolve() for name in RUN_OUTPUTS]
    return any(path == output or output in path.parents for output in outputs)


def new_run_dir(parent: Path) -> Path:
    """A new folder ``parent/edge-<date>-<time>`` (``-2``, ``-3``... when runs start in the same second)."""
    stamp = time.strftime("edge-%Y%m%d-%H%M%S")
    what = f"an output folder in {parent}"
    make_folder(parent, what)
    try:
        number = 1
        while True:
            folder = parent / (stamp if number == 1 else f"{stamp}-{number}")
            try:
                folder.mkdir()
            except FileExistsError:
                number += 1
            else:
                return folder
    except OSError as error:
        raise SinkError(f"cannot write {what}: {error.strerror or error}") from None


def earlier_outputs(out_dir: Path) -> list[str]:
    """The outputs of an earlier run in ``out_dir`` (the names a run writes)."""
    return [name for name in RUN_OUTPUTS if (out_dir / name).exists()]


def _make_out_dir(out_dir: Path, overwrite: bool) -> bool:
    """Create ``out_dir`` (True) or check it may be written (False: it was there)."""
    if out_dir.is_dir():
        earlier = earlier_outputs(out_dir)
        if earlier and not overwrite:
            raise ConfigError(
                f"{out_dir} holds an earlier run's {', '.join(earlier)}; pass --overwrite (overwrite=True) "
                "to replace them, or choose another --out-dir"
            )
        return False
    make_folder(out_dir, f"the output folder {out_dir}")
    return True


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _set_aside(out_dir: Path) -> list[tuple[Path, Path]]:
    """Move an earlier run's outputs (there only with ``overwrite``) to hidden names beside them, so
    none is left stale: (hidden, original) pairs for ``_put_back`` or ``_discard``."""
    moved = []
    try:
        for name in earlier_outputs(out_dir):
            hidden = out_dir / f".{name}.earlier-{uuid.uuid4().hex[:8]}"
            (out_dir / name).rename(hidden)
            moved.append((hidden, out_dir / name))
    except OSError as error:
        _put_back(moved)
        raise SinkError(f"cannot replace the earlier outputs in {out_dir}: {error}") from None
    return moved


def _put_back(moved: list[tuple[Path, Path]]) -> None:
    for hidden, original in moved:
        try:
            hidden.rename(original)
        except OSError as error:
            logger.warning("could not put back the earlier output %s (it is at %s): %s", original, hidden, error)


def _discard(moved: list[tuple[Path, Path]]) -> None:
    for hidden, _ in moved:
        with contextlib.suppress(OSError):
            _delete(hidden)


def _remove_run_outputs(out_dir: Path) -> None:
    """Delete the outputs of this run from ``out_dir``: it failed before its first frame."""
    for name in earlier_outputs(out_dir):
        with contextlib.suppress(OSError):
            _delete(out_dir / name)


def _run_into(source: str | int | Path, options: RunOptions, model_dir: Path, variant: VariantSpec) -> RunReport:
    with opencv_threads(RUNTIME_OPENCV_THREADS), open_source(source) as frames:
        detector_options = options.pipeline.detector.resolve(frames.kind)
        overlap = overlap_for(frames.kind, options.overlap)
        if isinstance(frames, VideoFileSource):
            frames.decode_ahead = decode_ahead_for(overlap)
        pipeline_options = replace(
            options.pipeline,
            model_dir=model_dir,
            detector=detector_options,
            workers=options.pipeline.workers if overlap else 1,
        )
        with Pipeline.from_options(pipeline_options, frames.kind) as pipeline:
            aside = _set_aside(options.out_dir)  # an earlier run's outputs: back in place if no frame is written
            variant_name = f"{variant.quantization} ({variant.file})"
            return _run_loop(frames, pipeline, options, model_dir, variant_name, detector_options, overlap, aside)


def _run_loop(
    source: Source, pipeline: Pipeline, options: RunOptions, model_dir: Path, variant: str,
    detector: FaceDetectorOptions, overlap: bool, aside: list[tuple[Path, Path]],
) -> RunReport:
    out_dir = options.out_dir
    summary = SummarySink()
    outputs: dict[str, str] = {}
    start_s = time.perf_counter()
    try:
        stop_reason = _write_frames(source, pipeline, options, overlap, summary, outputs)
    except BaseException:
        if not summary.frames:  # it failed before its first frame (no window, nothing readable):
            _remove_run_outputs(out_dir)  # no empty files of its own,
            _put_back(aside)  # and an earlier run's outputs as they were
        else:
            _discard(aside)
        raise
    kept_earlier = not summary.frames and bool(aside)  # stopped (Ctrl-C, SIGTERM) before a frame: no replacement
    if kept_earlier:
        _remove_run_outputs(out_dir)
        _put_back(aside)
        outputs.clear()
    else:
        _discard(aside)
        for name in [name for name, path in outputs.items() if not Path(path).exists()]:
            del outputs[name]  # the video opens on its first frame: a run stopped before it has none
        outputs["summary"] = str(out_dir / SUMMARY_NAME)
    elapsed_s = time.perf_counter() - start_s
    report = RunReport(
        source=source.name,
        source_kind=source.kind,
        model_dir=str(model_dir),
        variant=variant,
        detector_model=detector.model.value,
        detector_engine=detector.engine.value,
        trim_letterbox=pipeline.trims_letterbox,
        labels=pipeline.labels,
        frames=summary.frames,
        frames_with_faces=summary.frames_with_faces,
        faces=summary.faces,
        skipped_frames=source.skipped_frames,
        dropped_frames=getattr(source, "dropped_frames", 0),
        elapsed_s=elapsed_s,
        stop_reason=stop_reason,
        tracks=summary.tracks(),
        outputs=outputs,
    )
    if not kept_earlier:
        report.save(out_dir / SUMMARY_NAME)
    return report


def _write_frames(
    source: Source, pipeline: Pipeline, options: RunOptions, overlap: bool, summary: SummarySink,
    outputs: dict[str, str],
) -> str:
    """Open the outputs (naming them in ``outputs``), write every frame and close them: the stop reason."""
    out_dir = options.out_dir
    stop_reason = "end"
    with contextlib.ExitStack() as stack:
        sinks: list = [summary]
        if options.events:
            sinks.append(stack.enter_context(JsonlSink(out_dir / EVENTS_NAME)))
            outputs["events"] = str(out_dir / EVENTS_NAME)
        if options.video and source.kind is SourceKind.IMAGES:
            sinks.append(stack.enter_context(ImageDirSink(out_dir / IMAGES_DIR_NAME)))
            outputs["annotated"] = str(out_dir / IMAGES_DIR_NAME)
        elif options.video:
            sinks.append(stack.enter_context(VideoFileSink(out_dir / VIDEO_NAME, source.fps)))
            outputs["annotated"] = str(out_dir / VIDEO_NAME)
        display = display_available() if options.display is None else options.display
        if display:
            sinks.append(stack.enter_context(WindowSink(f"ers: {source.name}")))
        written = itertools.count(1)

        def write(frame: Frame, result: FrameResult) -> None:
            for sink in sinks:
                sink.write(frame, result)
            if options.max_frames is not None and next(written) >= options.max_frames:
                raise _EnoughFrames

        try:
            # Frames are written by whichever worker finished them (the soonest), but for a window, which is
            # drawn by the thread that opened it. The workers stop before the sinks close.
            pipeline.deliver(source, write, overlap=overlap, in_this_thread=display)
        except _EnoughFrames:
            stop_reason = "max_frames"
        except StopRequested:
            stop_reason = "quit"
        except Terminated:
            stop_reason = "terminated"
        except KeyboardInterrupt:
            stop_reason = "interrupted"
    return stop_reason
