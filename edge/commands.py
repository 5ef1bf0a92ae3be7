"""``ers run`` and ``ers bench``: parse flags, build options, call the Python API, print the result.

``edge/cli.py`` looks both up lazily.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

import click

from edge.cli import EXIT_INTERRUPTED
from edge.detector import DetectorEngine, DetectorModelName, FaceDetectorOptions
from edge.errors import ErsError
from edge.pipeline import DEFAULT_MODEL, SHIPPED_MODELS, WORKERS, PipelineOptions, shipped_model_dir
from edge.runner import RunOptions, handle_sigterm
from edge.runner import run as run_source
from edge.sources import DECODE_AHEAD, DECODE_THREADS
from edge.tracking import SmoothingOptions

_DETECTOR = FaceDetectorOptions()
_SMOOTHING = SmoothingOptions()
EXIT_TERMINATED = 143  # 128 + SIGTERM


# Shared by `ers run`, `ers bench` and tools/bench_targets.py: the same settings, measured as they run.
engine_option = click.option(
    "--detector-engine",
    type=click.Choice([engine.value for engine in DetectorEngine]),
    default=_DETECTOR.engine.value,
    show_default=True,
    help="What runs the face detector: mediapipe's FaceDetector task, or litert: the same model on LiteRT "
    "with the task's pre- and post-processing (the same boxes, less CPU per frame).",
)
trim_option = click.option(
    "--trim-letterbox", is_flag=True,
    help="With --detector-engine litert: run the short-range face detector on only the part of its square "
    "input that holds the frame (96 of 128 rows for 16:9 and 4:3 video): about a fifth less detection time, "
    "boxes within a few pixels of mediapipe's. The full-range model always takes its whole input.",
)


def model_options(command):
    """``--model NAME`` and ``--model-dir DIR``, handed to ``command`` as one ``model_dir`` (None: the default
    shipped model); giving both is a usage error."""

    @functools.wraps(command)
    def with_model_dir(*args, model: str | None, model_dir: Path | None, **kwargs):
        if model is not None and model_dir is not None:
            raise click.UsageError("--model and --model-dir both choose the emotion model: give one of them")
        if model is not None:
            try:
                model_dir = shipped_model_dir(model)
            except ErsError as error:  # before the command's own error handling: one line here too
                raise click.ClickException(str(error)) from None
        return command(*args, model_dir=model_dir, **kwargs)

    with_model_dir = click.option(
        "--model-dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Folder written by `ers export` (manifest.json + .tflite), instead of a shipped model.",
    )(with_model_dir)
    return click.option(
        "--model",
        type=click.Choice(SHIPPED_MODELS),
        default=None,
        help=f"Shipped emotion model (default: {DEFAULT_MODEL}). fast takes about a quarter less time a face "
        "for about half a point of accuracy (README, \"Measured figures\").",
    )(with_model_dir)


_threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="Threads for each worker's emotion model (and face detector, with --detector-engine litert). "
    "Default: the usable cores shared among the workers, at most 2, less one beside mediapipe's detector: "
    "1 each for 2 workers on 2 cores, 2 for a sequential run of a file with --detector-engine litert, "
    "1 for a camera or stream.",
)
_workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=WORKERS, show_default=True,
    help="Frames detected and classified at once (with --overlap), each worker with its own "
    "detector and classifier: one on a thread of its own; with more, see --caller-works.",
)
caller_works_option = click.option(
    "--caller-works/--dedicated-workers", default=True, show_default=True,
    help="With 2 or more --workers: the main thread is the first worker, or each worker has a thread and the "
    "main thread waits. Each frame is tracked and written by the worker that finished it, except with a live "
    "window, which the main thread draws: then the first gives the most frames per second and the second "
    "frames sooner (the main thread only tracks and writes).",
)


@click.command("run")
@click.argument("source")
@model_options
@click.option("--variant", help="Model variant in the manifest (e.g. int8, float32). Default: the manifest's.")
@click.option(
    "--detector",
    type=click.Choice([m.value for m in DetectorModelName]),
    default=_DETECTOR.model.value,
    show_default=True,
    help="Face detector: short range (webcam distance, fastest), full range (small or many faces), "
    "or auto (full for images and folders, short for video and cameras).",
)
@engine_option
@trim_option
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=_DETECTOR.min_detection_confidence,
    show_default=True,
    help="Minimum face detection score.",
)
@click.option(
    "--min-face-size",
    type=click.IntRange(min=0),
    default=_DETECTOR.min_face_size,
    show_default=True,
    help="Ignore faces whose box is smaller than this many pixels on its shorter side.",
)
@click.option(
    "--smoothing-alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=_SMOOTHING.alpha,
    show_default=True,
    help="Weight of the newest frame in each face's moving average (1 = no smoothing).",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write annotated.mp4 (or annotated/*.png), events.jsonl and summary.json. "
    "Default: a new folder runs/edge-<date>-<time>.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the outputs of an earlier run in --out-dir (other files stay)."
)
@click.option("--video/--no-video", default=True, show_default=True, help="Write the annotated video or images.")
@click.option("--events/--no-events", default=True, show_default=True, help="Write events.jsonl.")
@click.option(
    "--display/--no-display",
    default=None,
    help="Show a live window (q or Esc quits). Default: when a display is available.",
)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--overlap/--no-overlap",
    default=None,
    help="Decode, detect and classify the next frames on worker threads while this one is written: "
    "more frames per second from files, more latency. Default: on for files, off for cameras and streams.",
)
@_workers_option
@caller_works_option
@_threads_option
def run(
    source: str,
    model_dir: Path | None,
    variant: str | None,
    detector: str,
    detector_engine: str,
    trim_letterbox: bool,
    min_confidence: float,
    min_face_size: int,
    smoothing_alpha: float,
    out_dir: Path | None,
    overwrite: bool,
    video: bool,
    events: bool,
    display: bool | None,
    max_frames: int | None,
    overlap: bool | None,
    workers: int,
    caller_works: bool,
    threads: int | None,
) -> None:
    """Label every face in SOURCE: a webcam index (0), a stream URL, a video, an image or a folder.

    Ctrl-C stops the run and still writes every output (with --overwrite, a run stopped before its
    first frame writes none and keeps the earlier run's).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    options = RunOptions(
        out_dir=out_dir,
        overwrite=overwrite,
        pipeline=PipelineOptions(
            model_dir=model_dir,
            variant=variant,
            detector=FaceDetectorOptions(
                model=detector, engine=detector_engine, trim_letterbox=trim_letterbox,
                min_detection_confidence=min_confidence, min_face_size=min_face_size,
            ),
            smoothing=SmoothingOptions(alpha=smoothing_alpha),
            num_threads=threads,
            workers=workers,
            caller_works=caller_works,
        ),
        video=video,
        events=events,
        display=display,
        max_frames=max_frames,
        overlap=overlap,
    )
    with handle_sigterm():
        report = run_source(source, options)
    click.echo(report.summary())
    if not report.outputs:
        click.echo(f"  nothing written: the earlier run's outputs in {options.out_dir} are kept")
    if report.stop_reason == "interrupted":
        raise SystemExit(EXIT_INTERRUPTED)
    if report.stop_reason == "terminated":
        raise SystemExit(EXIT_TERMINATED)


def check_json_target(json_path: str | Path | None, *, stdout: bool = True) -> None:
    """Refuse a --json file that cannot be written before the benchmark runs, not after it
    (``stdout``: ``-`` prints the JSON instead of writing a file)."""
    if json_path is None or (stdout and str(json_path) == "-"):
        return
    if str(json_path) == "-":
        raise click.BadParameter("- (the JSON on stdout) is for `ers bench`; name a file", param_hint="--json")
    path = Path(json_path)
    if not str(json_path) or path.is_dir():
        hint = " (- prints the JSON instead)" if stdout else ""
        raise click.BadParameter(f"'{json_path}' is not a file name{hint}", param_hint="--json")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists is where it is created
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"cannot write {json_path}: {folder} is not a writable folder", param_hint="--json")


_BENCH_VARIANTS = ("float32", "float16", "dynamic", "int8")


@click.command("bench")
@click.argument("source", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@model_options
@click.option("--variant", type=click.Choice(_BENCH_VARIANTS), help="Model variant. Default: the manifest's.")
@_threads_option
@click.option(
    "--detector", type=click.Choice(["short", "full"]), default="short", show_default=True, help="Face detector model."
)
@engine_option
@trim_option
@click.option(
    "--decode-ahead",
    type=click.IntRange(min=0),
    default=None,
    help="Frames decoded ahead on a thread of their own (0: decode in the pipeline's thread). "
    f"Default: as `ers run` does, 0 with --overlap (the workers read ahead themselves), else {DECODE_AHEAD}.",
)
@click.option(
    "--decode-threads",
    type=click.IntRange(min=0),
    default=DECODE_THREADS,
    show_default=True,
    help="Threads FFmpeg decodes the clip with (0: FFmpeg's choice, one per core).",
)
@click.option(
    "--overlap/--no-overlap",
    default=None,
    help="Decode, detect and classify the next frames on worker threads, as `ers run` does "
    "for files. Default: on, off with --realtime (as for a camera).",
)
@_workers_option
@caller_works_option
@click.option("--frames", type=click.IntRange(min=1), default=300, show_default=True, help="Frames to time.")
@click.option(
    "--warmup", type=click.IntRange(min=0), default=30, show_default=True, help="Frames to run before timing."
)
@click.option("--draw/--no-draw", default=False, show_default=True, help="Draw the annotated frame.")
@click.option("--encode/--no-encode", default=False, show_default=True, help="Encode the annotated video (mp4).")
@click.option("--events/--no-events", default=False, show_default=True, help="Write events.jsonl.")
@click.option(
    "--faces",
    type=click.IntRange(1, 36),
    help="Tile the clip's face N times into every frame, to see how the cost grows with faces.",
)
@click.option(
    "--baseline/--no-baseline",
    default=False,
    show_default=True,
    help="Also time decode + detect alone (in blocks of 200 frames between the pipeline's; on alternate "
    "frames with --no-overlap), to show what the rest of the pipeline adds.",
)
@click.option(
    "--fer/--no-fer",
    default=None,
    help="Also time the `fer` package on the same clip. Default: when it is importable.",
)
@click.option(
    "--fer-python",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Python interpreter that has `fer` installed (default: this one).",
)
@click.option("--fer-frames", type=click.IntRange(min=1), default=20, show_default=True, help="Frames fer is timed on.")
@click.option(
    "--realtime/--no-realtime",
    default=False,
    show_default=True,
    help="Let frames arrive at the clip's own frame rate, as a camera's do, decode each on arrival and time "
    "its latency from arrival to result (the delay a live viewer sees). Frames per second are then the clip's rate.",
)
@click.option("--json", "json_path", help="Also write the report as JSON to this file (- for stdout only).")
def bench(
    source: Path | None,
    model_dir: Path | None,
    variant: str | None,
    threads: int | None,
    detector: str,
    detector_engine: str,
    trim_letterbox: bool,
    decode_ahead: int | None,
    decode_threads: int,
    overlap: bool | None,
    workers: int,
    caller_works: bool,
    frames: int,
    warmup: int,
    draw: bool,
    encode: bool,
    events: bool,
    faces: int | None,
    baseline: bool,
    fer: bool | None,
    fer_python: Path | None,
    fer_frames: int,
    realtime: bool,
    json_path: str | None,
) -> None:
    """Time the runtime on SOURCE (a video; default: the sample clip single_face.mp4), stage by stage.

    Runs the same pipeline as `ers run`, headless, after a warm-up; the clip
    plays in a loop until --frames frames are timed.
    """
    from edge.bench import BenchOptions, benchmark

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    check_json_target(json_path)
    options = BenchOptions(
        source=source,
        model_dir=model_dir,
        variant=variant,
        num_threads=threads,
        detector=detector,
        detector_engine=detector_engine,
        trim_letterbox=trim_letterbox,
        decode_ahead=decode_ahead,
        decode_threads=decode_threads or None,
        overlap=overlap,
        workers=workers,
        caller_works=caller_works,
        frames=frames,
        warmup_frames=warmup,
        draw=draw,
        encode=encode,
        events=events,
        faces=faces,
        baseline=baseline,
        fer=fer,
        fer_python=fer_python,
        fer_frames=fer_frames,
        realtime=realtime,
    )
    report = benchmark(options)
    if json_path == "-":
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(report.table())
    if json_path:
        click.echo(f"JSON report: {report.save(Path(json_path))}")
