"""``ers export``: parse flags, build ``ExportOptions``, call ``export_model``, print the summary.

Exit codes: 0 when every variant passes the gate; 1 with a one-line-per-failure
message when one does not (the export folder is written anyway, with the
report explaining) or when the input is unusable.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge.model_spec import CropSpec
from export.errors import ExportGateTripped
from export.options import ExportOptions, Quantization, parse_variants

_DEFAULTS = ExportOptions()
_VARIANT_NAMES = ",".join(q.value for q in Quantization)
_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)


def _variants(ctx: click.Context, param: click.Parameter, value: str) -> tuple[Quantization, ...]:
    try:
        variants = parse_variants(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if not variants:
        raise click.BadParameter(f"name at least one of {_VARIANT_NAMES}")
    return variants


@click.command()
@click.argument("model_path", type=click.Path(exists=True, path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), required=True,
              help="Folder to write the .tflite variants, manifest.json and the report into.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training config (default: config.yaml beside the model, if any).")
@click.option("--test-dir", type=_existing_dir,
              help="Labelled test set DIR/<label>/*.png (default: the config's test split).")
@click.option("--representative-dir", type=_existing_dir,
              help="int8 calibration images, class folders or flat (default: the config's train split).")
@click.option("--variants", default=_VARIANT_NAMES, show_default=True, callback=_variants,
              help="Comma-separated variants to export.")
@click.option("--representative-count", type=click.IntRange(min=1),
              default=_DEFAULTS.representative_count, show_default=True,
              help="Training images used to calibrate int8.")
@click.option("--test-limit", type=click.IntRange(min=1), default=None,
              help="Use at most N test images (seeded sample).")
@click.option("--max-accuracy-drop", type=click.FloatRange(0, 100),
              default=_DEFAULTS.max_accuracy_drop, show_default=True,
              help="Fail when a variant's accuracy is more than this many percentage points below Keras.")
@click.option("--min-agreement", type=click.FloatRange(0, 1),
              default=_DEFAULTS.min_agreement, show_default=True,
              help="Fail when a variant's top-1 matches Keras on fewer than this fraction of images.")
@click.option("--crop-scale", type=float, default=CropSpec().scale, show_default=True,
              help="Face crop side as a multiple of the detector box's larger side.")
@click.option("--crop-shift-y", type=float, default=CropSpec().shift_y, show_default=True,
              help="Move the crop centre down by this many box heights.")
@click.option("--threads", "num_threads", type=click.IntRange(min=1), default=None,
              help="Interpreter threads while verifying (default: LiteRT's choice).")
@click.option("--float-first-conv/--int8-first-conv", default=_DEFAULTS.float_first_conv, show_default=True,
              help="int8 variant: keep the convolution that reads the image in float32 (5x faster there "
                   "with XNNPACK on an AMX Xeon; the variant then takes and gives float32 tensors).")
@click.option("--force", is_flag=True,
              help="Replace an earlier export in --out-dir (never a folder holding other files).")
def export(
    model_path: Path,
    out_dir: Path,
    config_path: Path | None,
    test_dir: Path | None,
    representative_dir: Path | None,
    variants: tuple[Quantization, ...],
    representative_count: int,
    test_limit: int | None,
    max_accuracy_drop: float,
    min_agreement: float,
    crop_scale: float,
    crop_shift_y: float,
    num_threads: int | None,
    float_first_conv: bool,
    force: bool,
) -> None:
    """Convert MODEL_PATH (a trained .keras model) to TFLite variants and verify each one.

    Writes OUT_DIR/{model_<variant>.tflite, manifest.json, report.json, report.md}.
    Exits 1, naming the variant and by how much, when a variant fails the gate.
    """
    from export.api import export_model  # lazy: TensorFlow loads only when exporting

    options = ExportOptions(
        variants=variants,
        config_path=config_path,
        test_dir=test_dir,
        representative_dir=representative_dir,
        representative_count=representative_count,
        test_limit=test_limit,
        max_accuracy_drop=max_accuracy_drop,
        min_agreement=min_agreement,
        crop=CropSpec(scale=crop_scale, shift_y=crop_shift_y),
        num_threads=num_threads,
        force=force,
        float_first_conv=float_first_conv,
    )
    try:
        result = export_model(model_path, out_dir, options)
    except ExportGateTripped as error:
        click.echo(error.result.summary())
        raise
    click.echo(result.summary())
    click.echo(f"\nNext: ers run 0 --model-dir {out_dir}   (0 = first camera; or a video, image or folder)")
