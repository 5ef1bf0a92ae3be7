"""What two Python threads cost each other: one frame loop alone, two in threads, two in processes.

An overlapped run's frame p95 lies above a sequential run's on 2 cores, with
the workers each on a core of their own and nothing queued between them. This
separates the cause. Each loop is the sequential pipeline (decode a frame, then
``Pipeline.process``) on its own copy of the clip, with its own detector and
classifier, kept with its detector's threads to one core: two loops share
nothing but, in threads, the Python interpreter (its lock, the GIL, and its
objects). Each round times one loop alone, two in threads of one process,
and two in processes, in turn, and prints, per arrangement, the median over
rounds and loops of the frame p50 and p95 (decode included; re-opening the
looped clip not counted) and of the times per frame a loop's thread went to
sleep (voluntary context switches, from Linux's ``/proc``). Alone, a loop
sleeps only while mediapipe's detector works on threads of its own; in
threads, every further sleep is a wait for the GIL that the other loop holds.

``--by-call`` also says where in a frame those waits land: each loop times
its calls that let go of the GIL (decoding the next frame; OpenCV's
``cvtColor``, ``warpAffine``, ``LUT`` and ``resize`` and LiteRT's ``invoke`` inside
the pipeline) and prints their milliseconds per frame beside the rest of the
frame (Python and numpy, and with the mediapipe engine its detector's call).
A wait for the GIL ends such a call, so it counts in that call's time. Its
wrappers cost a few microseconds a call.

    python tools/thread_cost.py --detector-engine litert --rounds 3
    python tools/thread_cost.py --detector-engine litert --by-call --arrangement alone --arrangement threads
    python tools/thread_cost.py --detector-engine litert --by-call --faces 5   # the clip's face tiled 5 times

``--faces N`` loops a copy of the clip with its face tiled N times, as
``ers bench --faces N`` does, to see what each further face costs.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import click
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from edge.bench import MAX_FACES  # noqa: E402
from edge.benchclips import LoopedClip, sample_clip, write_tiled_faces_clip  # noqa: E402
from edge.classifier import EmotionClassifier  # noqa: E402
from edge.commands import engine_option  # noqa: E402
from edge.cores import pinned  # noqa: E402
from edge.detector import FaceDetector, FaceDetectorOptions  # noqa: E402
from edge.errors import ErsError  # noqa: E402
from edge.pipeline import DEFAULT_MODEL_DIR, Pipeline  # noqa: E402
from edge.types import SourceKind  # noqa: E402

ARRANGEMENTS = ("alone", "threads", "processes")


CALLS = ("decode", "opencv", "invoke", "rest")  # --by-call's parts of a frame, in its table's order
TIMED_OPENCV = ("cvtColor", "warpAffine", "LUT", "resize")  # the OpenCV calls the pipeline makes for a frame


class LoopTimes(NamedTuple):
    p50_ms: float
    p95_ms: float
    sleeps_per_frame: float | None  # None where /proc has no per-thread counts
    calls_ms: dict[str, float] | None = None  # --by-call: mean ms per frame of each of CALLS


_clock = threading.local()  # .seconds: the calling thread's seconds per kind of call, while it keeps count


def _counted(kind: str, function):
    """``function`` timed into the calling thread's count of ``kind`` calls, when it keeps one."""

    def timed(*args, **kwargs):
        seconds = getattr(_clock, "seconds", None)
        if seconds is None:
            return function(*args, **kwargs)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[kind] += time.perf_counter() - started

    timed.counted = True
    return timed


def install_call_clock() -> None:
    """Wrap the pipeline's OpenCV calls and LiteRT's invoke so that a thread keeping a count
    (``_clock.seconds``) gets their times; once per process, and free for the others."""
    for name in TIMED_OPENCV:
        if not getattr(getattr(cv2, name), "counted", False):
            setattr(cv2, name, _counted("opencv", getattr(cv2, name)))
    if not getattr(Interpreter.invoke, "counted", False):
        Interpreter.invoke = _counted("invoke", Interpreter.invoke)


def _sleeps() -> int | None:
    """Voluntary context switches of the calling thread so far (None off Linux)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split(":")[1])
    except OSError:
        return None
    return None


def frame_loop(core: int, clip: Path, engine: str, frames: int, warmup: int, start, by_call: bool = False
               ) -> LoopTimes:
    """Decode and process ``frames`` frames of ``clip`` after ``warmup``, on ``core`` with the threads its
    detector starts; ``start`` (a barrier, or None) lines the timed frames up with the other loop's.
    ``by_call``: also the mean time per frame of each of ``CALLS``."""
    if by_call:
        install_call_clock()
    with pinned(core), EmotionClassifier.from_dir(DEFAULT_MODEL_DIR, num_threads=1) as classifier, \
            FaceDetector(FaceDetectorOptions(engine=engine).resolve(SourceKind.VIDEO), num_threads=1) as detector:
        pipeline = Pipeline(detector, classifier)  # on the core already: pinned once, as an overlapped worker is
        looped = LoopedClip(clip, warmup + frames, decode_ahead=0, decode_threads=1)
        iterator = iter(looped)
        for _ in range(warmup):
            pipeline.process(next(iterator))
        if start is not None:
            start.wait()
        latency = np.zeros(frames)
        seconds = dict.fromkeys(CALLS, 0.0)
        slept = _sleeps()
        for index in range(frames):
            started = time.perf_counter()
            frame = next(iterator)
            decoded = time.perf_counter()
            if by_call:
                _clock.seconds = seconds  # the calls the pipeline makes for this frame count
            try:
                pipeline.process(frame)
            finally:
                _clock.seconds = None
            reopen = looped.reopen_at.get(frame.index, 0.0)
            latency[index] = time.perf_counter() - started - reopen
            seconds["decode"] += decoded - started - reopen
        after = _sleeps()
    sleeps = (after - slept) / frames if slept is not None and after is not None else None
    calls = None
    if by_call:
        seconds["rest"] = float(latency.sum()) - sum(seconds[kind] for kind in CALLS if kind != "rest")
        calls = {kind: 1e3 * seconds[kind] / frames for kind in CALLS}
    return LoopTimes(1e3 * float(np.percentile(latency, 50)), 1e3 * float(np.percentile(latency, 95)), sleeps, calls)


def _in_process(results, core: int, *args, by_call: bool = False) -> None:
    """``frame_loop`` in a process of its own: its times, or what stopped it, go to ``results``."""
    start = args[-1]
    try:
        results.put((core, frame_loop(core, *args, by_call=by_call)))
    except BaseException as error:
        start.abort()  # the other loop stops waiting for this one
        results.put((core, f"{type(error).__name__}: {error}"))


def _failed(failures: list[str]) -> click.ClickException:
    return click.ClickException("a frame loop failed: " + "; ".join(failures))


def run_arrangement(arrangement: str, cores: tuple[int, int], clip: Path, engine: str, frames: int,
                    warmup: int, by_call: bool = False) -> list[LoopTimes]:
    """The times of each loop of one arrangement: ``alone`` (one loop), ``threads`` or ``processes`` (two);
    ``by_call``: with the times of its calls (``frame_loop``)."""
    args = (clip, engine, frames, warmup)
    failures: list[str] = []
    if arrangement == "alone":
        try:
            return [frame_loop(cores[0], *args, None, by_call=by_call)]
        except Exception as error:
            raise _failed([f"core {cores[0]}: {type(error).__name__}: {error}"]) from None
    if arrangement == "threads":
        start = threading.Barrier(2)
        times: list[LoopTimes] = []

        def loop(core: int) -> None:
            try:
                times.append(frame_loop(core, *args, start, by_call=by_call))
            except BaseException as error:
                start.abort()
                failures.append(f"core {core}: {type(error).__name__}: {error}")

        threads = [threading.Thread(target=loop, args=(core,)) for core in cores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise _failed(failures)
        return times
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_in_process, args=(results, core, *args, start),
                                 kwargs={"by_call": by_call}, daemon=True) for core in cores]
    for process in processes:
        process.start()
    loops: list[LoopTimes] = []
    try:
        while len(loops) + len(failures) < len(processes):
            try:
                core, outcome = results.get(timeout=1.0)
            except queue.Empty:
                ended = [f"core {core}: exit code {process.exitcode}" for core, process in zip(cores, processes)
                         if process.exitcode not in (None, 0)]
                if ended:  # killed, or crashed in native code: it could not say why
                    raise _failed(ended) from None
                continue
            if isinstance(outcome, str):
                failures.append(f"core {core}: {outcome}")
            else:
                loops.append(outcome)
    finally:
        for process in processes:
            process.join(10)
    if failures:
        raise _failed(failures)
    return loops


@click.command()
@click.option("--clip", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Video to loop (default: the sample clip single_face.mp4).")
@engine_option
@click.option("--frames", type=click.IntRange(min=100), default=3000, show_default=True, help="Frames each loop times.")
@click.option("--warmup", type=click.IntRange(min=0), default=300, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--arrangement", "arrangements", multiple=True, type=click.Choice(ARRANGEMENTS),
              default=ARRANGEMENTS, show_default=True, help="Which to time; repeat for several.")
@click.option("--by-call", is_flag=True,
              help="Also time each loop's calls that let go of the GIL: where a frame's waits for it land.")
@click.option("--faces", type=click.IntRange(1, MAX_FACES), default=None,
              help="Loop a copy of the clip with its face tiled this many times (as `ers bench --faces`).")
def main(clip: Path | None, detector_engine: str, frames: int, warmup: int, rounds: int,
         arrangements: tuple[str, ...], by_call: bool, faces: int | None) -> None:
    """Frame p50 and p95 of one frame loop alone, two in threads and two in processes, in turn."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(usable) < 2:
        raise click.ClickException("needs 2 cores this process may use, and Linux's sched_setaffinity")
    cores = (usable[0], usable[1])
    clip = clip or sample_clip()
    if faces is None:
        _time_arrangements(clip, detector_engine, frames, warmup, rounds, arrangements, by_call, cores)
        return
    with tempfile.TemporaryDirectory(prefix="ers-thread-cost-") as scratch:
        options = FaceDetectorOptions(model="short", engine=detector_engine)
        try:
            tiled = write_tiled_faces_clip(clip, faces, Path(scratch) / f"{clip.stem}_faces{faces}.mp4", options)
        except ErsError as error:
            raise click.ClickException(str(error)) from None
        _time_arrangements(tiled, detector_engine, frames, warmup, rounds, arrangements, by_call, cores)


def _time_arrangements(clip: Path, detector_engine: str, frames: int, warmup: int, rounds: int,
                       arrangements: tuple[str, ...], by_call: bool, cores: tuple[int, int]) -> None:
    """Run the rounds of every arrangement asked for on ``clip``, on ``cores``, and print their table(s)."""
    measured: dict[str, list[LoopTimes]] = {name: [] for name in ARRANGEMENTS if name in arrangements}
    for number in range(1, rounds + 1):
        for arrangement in measured:
            loops = run_arrangement(arrangement, cores, clip, detector_engine, frames, warmup, by_call)
            measured[arrangement].extend(loops)
            click.echo(f"round {number}/{rounds}, {arrangement}: "
                       + ", ".join(f"p50 {loop.p50_ms:.3f} p95 {loop.p95_ms:.3f} ms" for loop in loops), err=True)
    click.echo(f"{clip.name}, detector on {detector_engine}, {frames} frames a loop, {rounds} rounds, "
               f"cores {cores[0]} and {cores[1]}; medians over the rounds and loops")
    click.echo(f"{'arrangement':<12} {'frame p50':>10} {'frame p95':>10} {'sleeps per frame':>17}")
    for arrangement, loops in measured.items():
        sleeps = [loop.sleeps_per_frame for loop in loops if loop.sleeps_per_frame is not None]
        click.echo(f"{arrangement:<12} {statistics.median(loop.p50_ms for loop in loops):>7.3f} ms "
                   f"{statistics.median(loop.p95_ms for loop in loops):>7.3f} ms "
                   f"{statistics.median(sleeps) if sleeps else float('nan'):>17.2f}")
    if by_call:
        click.echo(calls_table(measured, detector_engine))


def calls_table(measured: dict[str, list[LoopTimes]], engine: str) -> str:
    """Mean ms per frame of each part of a frame (``CALLS``), medians over the loops of each arrangement."""
    labels = {"decode": "decode", "opencv": "OpenCV", "invoke": "invoke", "rest": "the rest"}
    rest = "Python and numpy" + (", and mediapipe's face detector" if engine == "mediapipe" else "")
    lines = ["ms per frame: decoding the next frame; OpenCV's " + ", ".join(TIMED_OPENCV) + " and LiteRT's invoke "
             f"in the pipeline; the rest ({rest})",
             f"{'arrangement':<12}" + "".join(f"{labels[kind]:>10}" for kind in CALLS)]
    for arrangement, loops in measured.items():
        lines.append(f"{arrangement:<12}" + "".join(
            f"{statistics.median(loop.calls_ms[kind] for loop in loops):>10.3f}" for kind in CALLS))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
