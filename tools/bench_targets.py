"""The runtime's speed targets, each measured with ``ers bench`` in interleaved rounds.

One run of ``ers bench`` on a shared 2-core machine can land 20% away from
the next one, so this runs every measurement ``--rounds`` times, one of each
per round (a slow spell of the machine then hits all of them alike), and
prints the median with the range beside each target:

- frames per second end to end (overlapped, the ``ers run`` default for files);
- what classifier + tracking add to decode + detect alone (``--baseline``);
- frame latency p95, sequential (``--no-overlap --decode-ahead 0``: one frame
  at a time, nothing queued behind another) and overlapped;
- the cost of a 5-face frame against a 1-face frame (``--faces``);
- the cost of writing ``events.jsonl`` (``--events``);
- the ratio against the ``fer`` package on the same clip, when ``--fer-python``
  names a Python that has it (timed once, after the rounds).

    python tools/bench_targets.py --rounds 5 --json bench_targets.json
    python tools/bench_targets.py --clip WolfgangLanger_Pexels.mp4 --fer-python ENV/bin/python
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from edge.bench import BenchOptions, benchmark, fer_available
from edge.benchclips import SAMPLE_CLIP, sample_clip
from edge.benchreport import BenchReport, machine_info
from edge.commands import check_json_target, engine_option, model_options, trim_option
from edge.errors import ConfigError, ErsError
from edge.pipeline import resolve_model_dir
from edge.sinks import write_json


@dataclass(frozen=True)
class Target:
    """One speed target: which runs it reads, how it turns them into a figure, and its limit."""

    name: str
    runs: tuple[str, ...]
    figure: Callable[..., float]
    limit: float
    at_least: bool  # True: the figure must reach the limit; False: it must stay at or below it
    unit: str

    def met(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit


def _runs(base: BenchOptions) -> dict[str, BenchOptions]:
    """The ``ers bench`` runs one round makes, by name: the tiled-face ones first, so a clip without a
    face to tile fails in seconds, not after the other runs."""
    return {
        "faces1": replace(base, faces=1),
        "faces5": replace(base, faces=5),
        "overlapped": replace(base, baseline=True),
        "sequential": replace(base, overlap=False, decode_ahead=0),
        "events": replace(base, events=True),
    }


TARGETS = (
    Target("end-to-end FPS", ("overlapped",), lambda r: r.fps, 600.0, True, "FPS"),
    Target("classifier + tracking add to decode + detect", ("overlapped",),
           lambda r: r.added_percent_mean, 25.0, False, "%"),
    Target("frame p95, sequential", ("sequential",), lambda r: r.latency.p95_ms, 3.0, False, "ms"),
    Target("frame p95, overlapped", ("overlapped",), lambda r: r.latency.p95_ms, 3.0, False, "ms"),
    Target("5-face frame against 1-face frame", ("faces1", "faces5"), lambda one, five: one.fps / five.fps,
           1.6, False, "x"),
    Target("events.jsonl adds", ("overlapped", "events"), lambda off, on: 100.0 * (off.fps / on.fps - 1.0),
           10.0, False, "%"),
)


def measure(base: BenchOptions, rounds: int, progress: Callable[[str], None] = lambda line: None
            ) -> dict[str, list[float]]:
    """Each target's figure in each of ``rounds`` interleaved rounds of the runs it needs."""
    figures: dict[str, list[float]] = {target.name: [] for target in TARGETS}
    runs = _runs(base)
    for number in range(1, rounds + 1):
        reports: dict[str, BenchReport] = {}
        for name, options in runs.items():
            reports[name] = benchmark(options)
            progress(f"round {number}/{rounds}: {name} {reports[name].fps:.0f} FPS")
        for target in TARGETS:
            figures[target.name].append(float(target.figure(*(reports[name] for name in target.runs))))
    return figures


def fer_ratio(base: BenchOptions, fer_python: Path, fer_frames: int) -> dict[str, Any]:
    """ers against the ``fer`` package on the same clip in one run (``ers bench --fer``)."""
    report = benchmark(replace(base, fer=True, fer_python=fer_python, fer_frames=fer_frames))
    return {"ers_fps": round(report.fps, 1), "fer_fps": round(report.fer["fps"], 1),
            "ratio": round(report.fer_ratio, 2), "target": 10.0, "met": report.fer_ratio >= 10.0}


def summary(figures: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Median, range and verdict of each target."""
    rows = []
    for target in TARGETS:
        values = figures[target.name]
        median = statistics.median(values)
        rows.append({
            "target": target.name, "unit": target.unit, "median": round(median, 4),
            "min": round(min(values), 4), "max": round(max(values), 4), "values": [round(v, 4) for v in values],
            "limit": target.limit, "at_least": target.at_least, "met": target.met(median),
            "rounds_met": sum(target.met(value) for value in values),
        })
    return rows


def _shown(value: float, limit: float) -> str:
    """``value`` to 2 decimals, or 4 where 2 would print the limit itself (1.6004 is not <= 1.6)."""
    return f"{value:.4f}" if f"{value:.2f}" == f"{limit:.2f}" and value != limit else f"{value:.2f}"


def table(rows: list[dict[str, Any]], fer: dict[str, Any] | None) -> str:
    lines = [f"{'target':<46}{'median':>9}{'range':>22}  {'limit':<12}{'met':<4}rounds met"]
    for row in rows:
        unit = row["unit"] if row["unit"] in ("%", "x") else f" {row['unit']}"
        limit = f"{'>=' if row['at_least'] else '<='} {row['limit']:g}{unit}"
        spread = f"{_shown(row['min'], row['limit'])} to {_shown(row['max'], row['limit'])}"
        lines.append(f"{row['target']:<46}{_shown(row['median'], row['limit']):>9}{spread:>22}  {limit:<12}"
                     f"{'yes' if row['met'] else 'no':<4}{row['rounds_met']}/{len(row['values'])}")
    if fer is not None:
        name = f"ers against fer ({fer['ers_fps']:.0f} / {fer['fer_fps']:.1f} FPS)"
        lines.append(f"{name:<46}{fer['ratio']:>9.2f}{'':>22}  {'>= 10x':<12}{'yes' if fer['met'] else 'no'}")
    return "\n".join(lines)


@click.command()
@click.option("--clip", help="Video to time: a path, or the name of a sample clip. Default: single_face.mp4.")
@model_options
@click.option("--variant", default="int8", show_default=True, help="Model variant.")
@engine_option
@trim_option
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Interleaved rounds.")
@click.option("--frames", type=click.IntRange(min=1), default=1500, show_default=True, help="Frames per run.")
@click.option("--warmup", type=click.IntRange(min=0), default=30, show_default=True, help="Warm-up frames per run.")
@click.option("--fer-python", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Python that has `fer`: also time it on the clip (once, 100 frames).")
@click.option("--caller-works/--dedicated-workers", default=True, show_default=True,
              help="The main thread is the first of the 2 workers, or each worker has a thread of its own and "
              "the main thread waits (`ers bench --help` says what that changes).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the figures.")
def main(clip: str | None, model_dir: Path | None, variant: str, detector_engine: str, trim_letterbox: bool,
         rounds: int, frames: int, warmup: int, fer_python: Path | None, caller_works: bool,
         json_path: Path | None) -> None:
    """Measure every speed target of the runtime and say which are met."""
    try:
        _measure_and_report(clip, model_dir, variant, detector_engine, trim_letterbox, rounds, frames, warmup,
                            fer_python, caller_works, json_path)
    except ErsError as error:
        raise click.ClickException(str(error)) from None


def _measure_and_report(clip: str | None, model_dir: Path | None, variant: str, detector_engine: str,
                        trim_letterbox: bool, rounds: int, frames: int, warmup: int, fer_python: Path | None,
                        caller_works: bool, json_path: Path | None) -> None:
    check_json_target(json_path, stdout=False)
    if fer_python is not None and not fer_available(fer_python):  # found out now, not after every round
        raise ConfigError(f"the fer package is not importable by {fer_python}; pass a Python that has it")
    source = Path(clip) if clip and Path(clip).is_file() else sample_clip(clip or SAMPLE_CLIP)
    base = BenchOptions(source=source, model_dir=model_dir, variant=variant, detector_engine=detector_engine,
                        trim_letterbox=trim_letterbox, frames=frames, warmup_frames=warmup, fer=False,
                        caller_works=caller_works)
    warnings.simplefilter("ignore")  # numpy / protobuf notes from the native libraries
    figures = measure(base, rounds, progress=lambda line: click.echo(line, err=True))
    fer = fer_ratio(base, fer_python, 100) if fer_python is not None else None
    rows = summary(figures)
    machine = machine_info()
    how = ("" if caller_works else ", dedicated workers") + (", letterbox trimmed" if trim_letterbox else "")
    model = resolve_model_dir(model_dir)
    click.echo(f"{source.name}, {model.name} {variant}, detector on {detector_engine}{how}, {rounds} rounds of "
               f"{frames} frames; {machine['cpu_model']} ({machine['cpu_id']}), {machine['usable_cores']} usable cores")
    click.echo(table(rows, fer))
    if json_path is not None:
        write_json(json_path, {"clip": str(source), "model_dir": str(model), "variant": variant,
                               "detector_engine": detector_engine,
                               "trim_letterbox": trim_letterbox, "caller_works": caller_works, "rounds": rounds,
                               "frames": frames, "machine": machine, "targets": rows, "fer": fer}, "the figures")
        click.echo(f"JSON: {json_path}")


if __name__ == "__main__":
    main()
