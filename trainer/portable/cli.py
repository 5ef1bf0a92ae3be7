"""``ers pack`` and ``ers distill`` (also ``python -m trainer.portable pack|distill``, which needs no install)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from edge.cli import OneLineErrorGroup
from trainer.cli import build_config, setup_logging
from trainer.portable.distill import TEACHER_OVERRIDES, DistillOptions

_config_option = click.option("--config", "config_path", required=True,
                              type=click.Path(exists=True, dir_okay=False, path_type=Path),
                              help="The student's recipe, e.g. recipes/ferplus_vgg.yaml.")
_set_option = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")


@click.command("pack")
@_config_option
@_set_option
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="FER+ root.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .npz to write.")
@click.option("--val-limit", type=click.IntRange(min=1),
              help="Pack a random subset of this many validation images (default: all).")
def pack(config_path: Path, sets: tuple[str, ...], data_dir: Path, out: Path, val_limit: int | None) -> None:
    """Pack a recipe's training and validation images for `distill` on a machine without TensorFlow."""
    from trainer.portable.pack import pack as pack_splits

    setup_logging()
    path = pack_splits(build_config(config_path, sets, {"data.data_dir": data_dir}), out, val_limit)
    overrides = "".join(f" --set {shlex.quote(item)}" for item in sets)  # the pack is for this recipe, as set
    click.echo(f"packed: {path}\nnext: KERAS_BACKEND=jax python -m trainer.portable distill "
               f"--config {shlex.quote(str(config_path))}{overrides} --pack {shlex.quote(str(path))} "
               "--out-dir runs/NAME")


@click.command("distill")
@_config_option
@_set_option
@click.option("--pack", "pack_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The .npz written by `pack`.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--teacher-set", multiple=True, metavar="KEY=VALUE",
              help=f"Recipe overrides that make the teacher [default: {' '.join(TEACHER_OVERRIDES)}].")
@click.option("--teacher-epochs", type=int, default=DistillOptions.teacher_epochs, show_default=True)
@click.option("--teacher-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A teacher.weights.npz of an earlier run: skip training the teacher.")
@click.option("--epochs", type=int, default=DistillOptions.epochs, show_default=True, help="The student's epochs.")
@click.option("--teacher-max-seconds", type=float,
              help="Stop the teacher by then; its cosine schedule is shortened to fit.")
@click.option("--max-seconds", type=float, help="Likewise for the student.")
@click.option("--kd-weight", type=float, default=DistillOptions.kd_weight, show_default=True,
              help="Share of the loss that follows the teacher rather than the labels.")
@click.option("--temperature", type=float, default=DistillOptions.temperature, show_default=True)
@click.option("--overwrite", is_flag=True,
              help="Replace the outputs of an earlier run in --out-dir (other files stay).")
def distill(config_path: Path, sets: tuple[str, ...], pack_path: Path, out_dir: Path,
            teacher_set: tuple[str, ...], teacher_epochs: int, teacher_weights: Path | None,
            teacher_max_seconds: float | None, max_seconds: float | None, epochs: int,
            kd_weight: float, temperature: float, overwrite: bool) -> None:
    """Train a teacher, then the recipe's network distilled from it (any Keras backend, e.g. KERAS_BACKEND=jax)."""
    from trainer.portable.distill import train_distilled

    setup_logging()
    options = DistillOptions(
        teacher_overrides=teacher_set or TEACHER_OVERRIDES, teacher_epochs=teacher_epochs, epochs=epochs,
        kd_weight=kd_weight, temperature=temperature, teacher_weights=teacher_weights,
        teacher_max_seconds=teacher_max_seconds, max_seconds=max_seconds)
    summary = train_distilled(build_config(config_path, sets, {}), pack_path, out_dir, options, overwrite=overwrite)
    click.echo(f"student: {out_dir / 'model.keras'} ({summary['student_seconds']:.0f} s)\n"
               f"next: ers evaluate --model {out_dir / 'model.keras'} --split test")


def main(argv: list[str] | None = None) -> None:
    group = OneLineErrorGroup(commands={"pack": pack, "distill": distill},
                   help="Distillation on a machine without TensorFlow (see trainer/portable/__init__.py).")
    group.main(args=argv, prog_name="python -m trainer.portable")
