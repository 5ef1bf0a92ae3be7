"""Which normalisation statistics suit a model: as saved, or re-estimated on augmented or plain training images.

Weight averaging (``optim.ema_momentum``) re-estimates every BatchNormalization
layer's statistics before each validation (``optim.ema_calibration_batches``),
on the training pipeline's augmented batches or, with
``optim.ema_calibration_images=plain``, on the same images un-augmented. Which
is right depends on the augmentation the model's weights were trained with:
this scores a model on the test split three ways, each re-estimate starting
from the model as saved, so a fine-tune's recipe can be chosen before it runs.

    python tools/norm_statistics.py --model runs/shipped_cal/model.keras --data-dir ../shared/data/ferplus
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from edge.errors import ErsError


def score_statistics(cfg, model_path: Path, batches: int) -> dict[str, float]:
    """Top-1 accuracy on the test split: as saved, then re-estimated on ``batches`` augmented or plain batches."""
    from trainer.callbacks import recalibrate_batch_norm
    from trainer.data import load_datasets
    from trainer.evaluate import load_checked_model

    cfg = cfg.replace({"optim.ema_calibration_images": "plain"})
    datasets = load_datasets(cfg, ("train", "test"))

    def accuracy(model) -> float:
        predicted = model.predict(datasets.test, verbose=0).argmax(axis=-1)
        return float(np.mean(predicted == datasets.test_labels))

    scores = {"as saved": accuracy(load_checked_model(model_path, cfg))}
    for name, batches_of in (("augmented", datasets.train), ("plain", datasets.calibration)):
        model = load_checked_model(model_path, cfg)
        recalibrate_batch_norm(model, batches_of, batches)
        scores[f"re-estimated on {name} training images"] = accuracy(model)
    return scores


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model's recipe [default: config.yaml beside the model].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data root [default: the config's].")
@click.option("--batches", type=click.IntRange(min=1), default=50, show_default=True,
              help="Training batches per re-estimate (the recipe's optim.ema_calibration_batches).")
def main(model_path: Path, config_path: Path | None, data_dir: Path | None, batches: int) -> None:
    """Score a model's normalisation statistics as saved and re-estimated on augmented or plain images."""
    from trainer.cli import build_config, setup_logging

    setup_logging()
    config_path = config_path or model_path.parent / "config.yaml"
    try:
        if not config_path.is_file():
            raise click.UsageError(f"{config_path} does not exist: name the model's recipe with --config")
        # Teachers' labels are irrelevant here and slow to compute.
        cfg = build_config(config_path, ("distill.teachers=[]",), {"data.data_dir": data_dir})
        scores = score_statistics(cfg, model_path, batches)
    except ErsError as error:
        raise click.ClickException(str(error)) from None
    width = max(map(len, scores))
    click.echo(f"{model_path}: top-1 on the test split, {batches} batches of {cfg.data.batch_size} per re-estimate")
    for name, value in scores.items():
        click.echo(f"  {name:<{width}}  {100 * value:6.2f}%")


if __name__ == "__main__":
    main()
