"""Time TFLite classifiers against each other: invokes alternate between the files in one process.

A 2-core machine's speed drifts by 10-20% within minutes, so two files timed
one after the other can swap places; here each round times every file in
turn, and the median over the rounds is compared. One thread, as the runtime's
classifier; ``--batch 5`` is the batch it invokes for a frame of 5 faces.

    python tools/time_invoke.py edge/models/emotion/model_int8.tflite exports/x/model_int8.tflite --batch 1 --batch 5
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import click
import numpy as np


def ready_interpreter(path: Path, batch: int):
    """An interpreter of ``path`` resized to ``batch`` inputs of zeros, warmed up."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(str(path), num_threads=1)
    except ValueError as error:
        raise click.ClickException(f"{path}: not a TFLite model ({error})") from None
    details = interpreter.get_input_details()[0]
    shape = [batch, *details["shape"][1:]]
    interpreter.resize_tensor_input(details["index"], shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(details["index"], np.zeros(shape, details["dtype"]))
    for _ in range(50):
        interpreter.invoke()
    return interpreter


def time_alternating(paths: list[Path], batch: int, rounds: int, invokes: int) -> list[tuple[Path, list[float]]]:
    """Milliseconds per invoke of each file, one figure per round, the files alternating within a round.

    One entry per path in order, a path given twice timed twice: the spread between the
    two is the noise an A/A comparison shows.
    """
    interpreters = [ready_interpreter(path, batch) for path in paths]
    times: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for interpreter, values in zip(interpreters, times):
            started = time.perf_counter()
            for _ in range(invokes):
                interpreter.invoke()
            values.append((time.perf_counter() - started) / invokes * 1e3)
    return list(zip(paths, times))


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch", "batches", multiple=True, type=click.IntRange(min=1), default=(1,), show_default=True,
              help="Faces per invoke; repeat for several.")
@click.option("--rounds", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--invokes", type=click.IntRange(min=1), default=500, show_default=True, help="Invokes per round.")
def main(paths: tuple[Path, ...], batches: tuple[int, ...], rounds: int, invokes: int) -> None:
    """Median milliseconds per invoke of each TFLite file, one thread, files alternating."""
    width = max(len(str(path)) for path in paths)
    for batch in batches:
        click.echo(f"batch {batch}: {rounds} rounds of {invokes} invokes, one thread")
        for path, values in time_alternating(list(paths), batch, rounds, invokes):
            click.echo(f"  {str(path):<{width}}  median {statistics.median(values):.3f} ms"
                       f"  (range {min(values):.3f} to {max(values):.3f})")


if __name__ == "__main__":
    main()
