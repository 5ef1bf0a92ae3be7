"""Where a model's int8 time goes: each layer's share, from int8 files of the model cut after it.

LiteRT's Python interpreter times whole invokes only. This cuts the Keras model
after every activation, pooling and dense layer (the ends of its stages),
converts each cut to int8 as ``ers export`` does (``export.convert``,
calibrated on random pixels: the values do not change the time), times the
cuts alternately in one process (``tools/time_invoke.py``) and prints, per
cut, the median time of the model up to there and what that layer added.

    python tools/layer_times.py runs/shipped_split/model.keras
    python tools/layer_times.py runs/shipped_split/model.keras --int8-first-conv   # the first conv in int8 too

The model itself can come back from an export with ``tools/rebuild_keras.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import click
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tools.time_invoke import time_alternating  # noqa: E402  (the same alternating timer)

STAGE_ENDS = ("ReLU", "Activation", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Dense")


def stage_ends(model) -> list[str]:
    """Names of the layers a cut ends at, in graph order: activations (a convolution's own too),
    poolings, dense layers."""
    return [
        layer.name for layer in model.layers
        if type(layer).__name__ in STAGE_ENDS
        or (type(layer).__name__ == "Conv2D" and getattr(layer.activation, "__name__", "linear") != "linear")
    ]


def cut_files(model, names: list[str], out_dir: Path, *, float_first_conv: bool, seed: int = 0) -> list[Path]:
    """An int8 .tflite file per cut of ``model`` after each layer of ``names``, in ``out_dir``."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from export.convert import convert_to_tflite, image_convolution, save_saved_model

    shape = tuple(model.inputs[0].shape[1:])
    pixels = np.random.default_rng(seed).integers(0, 256, (20, *shape)).astype(np.uint8)
    paths = []
    for index, name in enumerate(names):
        cut = keras.Model(model.inputs, model.get_layer(name).output)
        with tempfile.TemporaryDirectory(prefix="ers-cut-") as scratch:
            saved = save_saved_model(cut, Path(scratch) / "saved_model")
            content = convert_to_tflite(saved, "int8", pixels, float_first_conv=float_first_conv)
            takes_int8 = Interpreter(model_content=content).get_input_details()[0]["dtype"] == np.int8
            if float_first_conv and takes_int8 and image_convolution(content) is not None:
                # the cut is the image's convolution alone, which the whole model keeps in float32
                content = convert_to_tflite(saved, "float32")
        path = out_dir / f"{index:02d}_{name}.tflite"
        path.write_bytes(content)
        paths.append(path)
    return paths


def layer_rows(names: list[str], medians: list[float]) -> list[tuple[str, float, float]]:
    """(layer, median ms up to it, ms it added) per cut; a negative addition is the timing noise."""
    rows, before = [], 0.0
    for name, median in zip(names, medians):
        rows.append((name, median, median - before))
        before = median
    return rows


@click.command()
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--float-first-conv/--int8-first-conv", default=True, show_default=True,
              help="Keep the convolution that reads the image in float32, as `ers export` does by default.")
@click.option("--rounds", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--invokes", type=click.IntRange(min=1), default=300, show_default=True, help="Invokes per round.")
def main(model_path: Path, float_first_conv: bool, rounds: int, invokes: int) -> None:
    """Median int8 milliseconds of MODEL_PATH (.keras) up to each stage, and each stage's share."""
    warnings.simplefilter("ignore")
    import keras

    from edge.errors import ErsError

    try:
        model = keras.models.load_model(model_path, compile=False)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{model_path}: not a loadable Keras model ({error})") from None
    names = stage_ends(model)
    if not names:
        raise click.ClickException(f"{model_path}: no activation, pooling or dense layer to cut after")
    with tempfile.TemporaryDirectory(prefix="ers-layers-") as scratch:
        try:
            paths = cut_files(model, names, Path(scratch), float_first_conv=float_first_conv)
        except ErsError as error:
            raise click.ClickException(str(error)) from None
        timed = time_alternating(paths, 1, rounds, invokes)
    rows = layer_rows(names, [statistics.median(times) for _, times in timed])
    width = max(len(name) for name in names)
    click.echo(f"{model_path}: int8 (first convolution {'float32' if float_first_conv else 'int8'}), batch 1, "
               f"one thread, {rounds} rounds of {invokes} invokes")
    click.echo(f"  {'up to layer':<{width}}  {'ms':>7}  {'added':>7}")
    for name, median, added in rows:
        click.echo(f"  {name:<{width}}  {median:7.3f}  {added:+7.3f}")


if __name__ == "__main__":
    main()
