"""``ers data``, ``ers train`` and ``ers evaluate``: thin click commands over the trainer API.

TensorFlow is imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from trainer.config import (
    COLOR_MODES, DATA_FORMATS, LABEL_MODES, STRATEGIES, TrainConfig, read_config_file, resolve_config,
)

_path = click.Path(path_type=Path)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("trainer").setLevel(logging.INFO)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # tf.distribute logs every all-reduce at INFO


def build_config(config: Path | None, sets: tuple[str, ...], flags: dict[str, object]) -> TrainConfig:
    """defaults < --config file < --set KEY=VALUE < named flags."""
    file_data = read_config_file(config) if config is not None else None
    cfg = resolve_config(file_data, list(sets), source=str(config or "config"))
    named = {key: value for key, value in flags.items() if value is not None}
    return cfg.replace(named) if named else cfg


def _config_options(func):
    options = [
        click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="YAML or JSON config file (seed CamelCase keys accepted)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any config key, e.g. --set model.num_filters=8 --set LearningRate=3e-4."),
        click.option("--data-dir", type=_path, help="Data root: class folders, FER+ root or fer2013.csv."),
        click.option("--format", "data_format", type=click.Choice(DATA_FORMATS), help="Data layout."),
        click.option("--label-mode", type=click.Choice(LABEL_MODES), help="FER+ training labels."),
        click.option("--image-size", type=int, help="Model input side in pixels."),
        click.option("--color-mode", type=click.Choice(COLOR_MODES)),
        click.option("--batch-size", type=int),
        click.option("--skip-bad", is_flag=True, default=None, help="Skip and count bad image files."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _data_flags(data_dir, data_format, label_mode, image_size, color_mode, batch_size, skip_bad) -> dict:
    return {
        "data.data_dir": data_dir, "data.format": data_format, "data.label_mode": label_mode,
        "data.image_size": image_size, "data.color_mode": color_mode, "data.batch_size": batch_size,
        "data.skip_bad_files": True if skip_bad else None,
    }


@click.command()
@_config_options
@click.option("--epochs", type=int, help="Number of epochs (NoOfEpochs).")
@click.option("--model", "model_name", help="Registered model name (lenet, vit, ...).")
@click.option("--run-dir", type=_path, help="Run folder (default runs/<model>).")
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, default=None, help="Continue the unfinished run in --run-dir.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --run-dir.")
@click.option("--no-train", is_flag=True, help="Only evaluate --pretrained (the seed's train_again=False).")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from (or with --no-train, just evaluate) this .keras/.h5 model.")
@click.option("--strategy", type=click.Choice(STRATEGIES),
              help="tf.distribute strategy: default (one device), mirrored (every local GPU) or multiworker "
                   "(the cluster in TF_CONFIG). --batch-size is per replica. See docs/distributed.md.")
@click.option("--logical-devices", type=int,
              help="With --strategy mirrored: split the CPU into N devices and mirror over them (testing).")
def train(config, sets, data_dir, data_format, label_mode, image_size, color_mode, batch_size, skip_bad,
          epochs, model_name, run_dir, seed, resume, overwrite, no_train, pretrained, strategy,
          logical_devices) -> None:
    """Train a model from a config file and command-line overrides."""
    setup_logging()
    if resume and run_dir is not None and config is None and (Path(run_dir) / "config.yaml").is_file():
        config = Path(run_dir) / "config.yaml"
    flags = _data_flags(data_dir, data_format, label_mode, image_size, color_mode, batch_size, skip_bad)
    flags.update({"epochs": epochs, "model.name": model_name, "run_dir": run_dir, "seed": seed,
                  "strategy": strategy, "logical_devices": logical_devices})
    cfg = build_config(config, sets, flags)
    from trainer.train import train as run_training

    result = run_training(cfg, resume=resume, overwrite=overwrite, pretrained=pretrained, no_train=no_train)
    click.echo(result.summary())
    click.echo(f"next: ers export {result.model_path} --out-dir exports/NAME" + ("" if result.chief else "  (on the chief)"))


@click.command()
@_config_options
@click.option("--model", "model_paths", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Trained .keras/.h5 model; repeat it to score several as an ensemble (mean probabilities).")
@click.option("--split", type=click.Choice(("train", "val", "test")), default="test", show_default=True)
@click.option("--out", "out_dir", type=_path,
              help="Report folder (default <model folder>/eval_<split>, for an ensemble the first model's "
                   "eval_<split>_ensemble).")
@click.option("--flip-average", is_flag=True,
              help="Average each image's prediction with its mirror image's (test-time augmentation).")
def evaluate(config, sets, data_dir, data_format, label_mode, image_size, color_mode, batch_size, skip_bad,
             model_paths, split, out_dir, flip_average) -> None:
    """Evaluate a trained Keras model, or an ensemble of several, on a split (metrics.json, report, confusion matrix)."""
    setup_logging()
    if config is None and (model_paths[0].parent / "config.yaml").is_file():
        config = model_paths[0].parent / "config.yaml"
    flags = _data_flags(data_dir, data_format, label_mode, image_size, color_mode, batch_size, skip_bad)
    cfg = build_config(config, sets, flags)
    from trainer.evaluate import evaluate as run_evaluation

    report = run_evaluation(list(model_paths), cfg, split=split, out_dir=out_dir, flip_average=flip_average)
    click.echo(report.summary())
    if len(model_paths) == 1:
        click.echo(f"next: ers export {model_paths[0]} --out-dir exports/NAME")


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", type=_path, required=True, help="Output root (gets train/val/test/<class>/).")
@click.option("--format", "source_format", type=click.Choice(("auto", "folders", "ferplus", "fer2013_csv", "flat")),
              default="auto", show_default=True)
@click.option("--ratios", default="0.8,0.1,0.1", show_default=True, help="train,val,test split of a flat tree.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--class-names", help="Comma-separated classes (default: the project's 8).")
@click.option("--exclude-list", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="FER+ folder,image CSV of images to drop.")
@click.option("--skip-bad", is_flag=True, help="Skip and count bad image files.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def data(source, out_dir, source_format, ratios, seed, class_names, exclude_list, skip_bad, overwrite) -> None:
    """Convert or split a data set into the seed's SplittedDS/{train,val,test}/<class>/ PNG layout."""
    setup_logging()
    from edge.errors import ConfigError
    from trainer.convert import convert_dataset

    try:
        ratio_values = tuple(float(part) for part in ratios.split(","))
    except ValueError:
        raise ConfigError(f"--ratios must be three numbers like 0.8,0.1,0.1; got {ratios!r}") from None
    names = tuple(n.strip() for n in class_names.split(",") if n.strip()) if class_names else None
    result = convert_dataset(source, out_dir, source_format=source_format, ratios=ratio_values, seed=seed,
                             class_names=names, exclude_list=exclude_list, skip_bad=skip_bad, overwrite=overwrite)
    click.echo(result.summary())
    if result.empty_splits:
        click.echo(f"note: {', '.join(result.empty_splits)} got no images; ers train needs images in every split "
                   "(change --ratios)")
    click.echo(f"next: {result.train_command()}")
