"""Rebuild an exported ``vgg`` model as a Keras model from its float32 TFLite file.

The shipped model was trained on a GPU machine (``trainer/portable/``) and only
its exports ship; this gives back a ``.keras`` file that ``ers train
--pretrained`` can fine-tune, prune (``model.first_block_convs``) or split
(``model.conv_ranks``) on any machine. The converter folded each batch
normalisation into the layer before it and the input rescaling (1/255) into the
first convolution, so the rebuilt network holds the folded kernels with
identity normalisations (scale 1, mean 0, variance ``1 - epsilon``) and the
first kernel divided by the rescaling: the same function, checked against the TFLite file on
random images before it is saved. ``--conv-ranks`` then splits convolutions by
SVD (``trainer.lowrank``) without training, to see what a split costs before
fine-tuning it. The run's config goes beside the model, for ``ers export``.

Identity normalisations are right for inference and wrong for a fine-tune, which
runs them in training mode: ``--calibrate-dir`` gives them the statistics of
``--calibrate-images`` training images instead, keeping the function
(``trainer.norms``); a split model is calibrated again after the split.

    python tools/rebuild_keras.py --model-dir edge/models/emotion --out runs/shipped/model.keras
    python tools/rebuild_keras.py --conv-ranks block2_1:32,block3_2:96 --out runs/split/model.keras \
        --calibrate-dir ../shared/data/ferplus
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from edge.errors import ConfigError, ErsError
from edge.pipeline import DEFAULT_MODEL_DIR

FOLDED_OPS = ("CONV_2D", "FULLY_CONNECTED")


def folded_weights(tflite_path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of every convolution and dense layer, in graph order, in TFLite's layouts."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(tflite_path))
    interpreter.allocate_tensors()
    weights = []
    for op in interpreter._get_ops_details():  # the public API lists tensors, not which op reads them
        if op["op_name"] in FOLDED_OPS:
            kernel_index, bias_index = op["inputs"][1:3]
            kernel = interpreter.get_tensor(kernel_index)
            # a layer with nothing to fold into a bias has none (index -1)
            bias = interpreter.get_tensor(bias_index) if bias_index >= 0 else np.zeros(kernel.shape[0], kernel.dtype)
            weights.append((kernel, bias))
    return weights


def _normalisation(model, layer_name: str):
    """The batch normalisation that follows ``layer_name`` in ``build_vgg``'s naming, if any."""
    for suffix in ("_conv_expand", "_conv", ""):
        if layer_name.endswith(suffix):
            name = layer_name[: len(layer_name) - len(suffix)] + "_bn"
            break
    names = {layer.name for layer in model.layers}
    return model.get_layer(name) if name in names else None


def load_folded(model, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Set ``model``'s weights from the TFLite file's folded ones (the module docstring says how)."""
    import keras

    rescaling = [layer.scale for layer in model.layers if isinstance(layer, keras.layers.Rescaling)]
    input_scale = 1.0 / float(np.prod(rescaling))
    targets = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    if len(targets) != len(weights):
        raise ConfigError(f"the TFLite file has {len(weights)} convolution and dense layers; the config's "
                          f"network has {len(targets)}: rebuild with the run's own config.yaml")
    for position, (layer, (kernel, bias)) in enumerate(zip(targets, weights)):
        kernel = kernel.transpose(1, 2, 3, 0) if kernel.ndim == 4 else kernel.T
        if position == 0:
            kernel = kernel * input_scale
        own = layer.get_weights()
        if tuple(own[0].shape) != kernel.shape:
            raise ConfigError(f"layer {layer.name} has a {tuple(own[0].shape)} kernel; the TFLite file's is "
                              f"{kernel.shape}: rebuild with the run's own config.yaml")
        norm = _normalisation(model, layer.name)
        if len(own) == 2:
            layer.set_weights([kernel, bias])
        elif norm is not None:
            layer.set_weights([kernel])
            ones = np.ones_like(bias)
            norm.set_weights([ones, bias, np.zeros_like(bias), ones - norm.epsilon])
        elif np.abs(bias).max() == 0:
            layer.set_weights([kernel])
        else:
            raise ConfigError(f"layer {layer.name} has no bias and no normalisation to hold the TFLite bias")


def max_difference(model, model_dir: Path, images: int = 16, seed: int = 0) -> float:
    """Largest absolute difference of the probabilities of both on random 0-255 images.

    The TFLite side runs through the edge runtime's classifier, as ``ers export`` verifies it.
    """
    from edge.classifier import EmotionClassifier
    from export.verify import max_abs_diff

    classifier = EmotionClassifier.from_dir(model_dir, "float32")
    batch = np.random.default_rng(seed).uniform(0, 255, (images, *classifier.spec.input_shape)).astype(np.float32)
    return max_abs_diff(classifier.predict(batch), model.predict(batch, verbose=0))


@click.command()
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=DEFAULT_MODEL_DIR, show_default="the shipped model",
              help="An export folder: manifest.json, model_float32.tflite and report/config.yaml.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The run's config.yaml (default: MODEL_DIR/report/config.yaml).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .keras file to write.")
@click.option("--conv-ranks", default="", help="Split these convolutions, LAYER:RANK,... (model.conv_ranks).")
@click.option("--calibrate-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Training data (as ers train --data-dir) whose images set the normalisations' statistics, "
                   "for a fine-tune (default: identity normalisations).")
@click.option("--calibrate-images", type=click.IntRange(min=1), default=2000, show_default=True,
              help="How many training images --calibrate-dir measures (a seeded random subset).")
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="Largest difference of the probabilities allowed against the TFLite file.")
def main(model_dir: Path, config_path: Path | None, out: Path, conv_ranks: str, calibrate_dir: Path | None,
         calibrate_images: int, tolerance: float) -> None:
    """Rebuild MODEL_DIR's network as a Keras model and save it to OUT."""
    from trainer.config import TrainConfig
    from trainer.data import load_image_arrays
    from trainer.lowrank import multiply_adds
    from trainer.models import build_model
    from trainer.norms import calibrate_norms
    from trainer.train import build_and_compile

    tflite_path = model_dir / "model_float32.tflite"
    config_path = config_path or model_dir / "report" / "config.yaml"
    for path in (tflite_path, config_path):
        if not path.is_file():
            raise click.UsageError(f"{path} not found (export the float32 variant: ers export --variants float32)")
    cfg = TrainConfig.from_file(config_path)
    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    try:
        load_folded(model, folded_weights(tflite_path))
    except ConfigError as error:
        raise click.ClickException(f"{tflite_path}: {error}") from None
    images = None
    if calibrate_dir is not None:
        try:
            images, _ = load_image_arrays(cfg.replace({"data.data_dir": str(calibrate_dir)}).data, "train",
                                          limit=calibrate_images)
        except ErsError as error:
            raise click.ClickException(f"--calibrate-dir {calibrate_dir}: {error}") from None
        calibrate_norms(model, images)
    try:
        difference = max_difference(model, model_dir)
    except ErsError as error:
        raise click.ClickException(str(error)) from None
    if difference > tolerance:
        raise click.ClickException(f"{tflite_path}: the rebuilt model's probabilities differ by up to "
                                   f"{difference:.2e} (> {tolerance:g}); not saved")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    click.echo(f"{out}: {cfg.model.name}, {model.count_params():,} parameters, {multiply_adds(model):,} "
               f"multiply-adds; probabilities within {difference:.1e} of {tflite_path}")
    if conv_ranks:
        try:
            cfg = cfg.replace({"model.conv_ranks": conv_ranks})
            model = build_and_compile(cfg.replace({"precision": "float32"}), out)  # saved models are float32
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        if images is not None:
            calibrate_norms(model, images)
        model.save(out)
        click.echo(f"{out}: split {conv_ranks}: {model.count_params():,} parameters, "
                   f"{multiply_adds(model):,} multiply-adds")
    if images is not None:
        click.echo(f"normalisations calibrated on {len(images):,} training images of {calibrate_dir}")
    cfg.save(out.parent / "config.yaml")


if __name__ == "__main__":
    main()
