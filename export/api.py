"""``export_model``: Keras model -> verified TFLite variants + ``manifest.json`` + report.

Steps, each in its own module: load the test and calibration images
(``export.data``), convert every variant (``export.convert``), describe the
files (``export.metadata``), measure each through the runtime's classifier
(``export.verify``), judge them (``export.gate``) and write the report
(``export.report``).

Everything is written into a temporary folder beside ``out_dir`` and renamed
into place at the end, so a failed export leaves nothing half-written and an
existing export is replaced (with ``force``) only by a complete one. When the
gate trips, the export is still written, report included, and
``ExportGateTripped`` (an ``ExportGateError``) is raised afterwards, naming
each failing variant and by how much it missed; its ``result`` holds the
``ExportResult``.

Decisions: the gate applies to every variant, float32 included (a float32
file that disagrees with Keras means a conversion bug, not a quantization
loss). ``default_variant`` is "int8" whenever int8 is exported, even if it
failed the gate: the manifest describes the files, the gate's verdict is in
``report.json``, in the exit code and in each variant's ``gate_failures`` (the
runtime warns about them), and a failed export is not to be deployed. ``force``
replaces an earlier export only, never a folder holding other files.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.benchreport import machine_info
from edge.classifier import EmotionClassifier
from edge.errors import ConfigError, DataError, SinkError
from edge.folders import make_folder
from edge.model_spec import MANIFEST_NAME, ModelSpec, VariantSpec, sha256_of
from export import data as export_data
from export.convert import convert_to_tflite, save_saved_model
from export.errors import ConversionError, ExportGateTripped
from export.gate import ExportGate, accuracy_drop_pp
from export.metadata import build_model_spec, build_variant_spec
from export.options import ExportOptions, Quantization
from export.report import REPORT_JSON, REPORT_MD, ExportReport
from export.verify import ClassificationMetrics, VerifyReport, verify_tflite

logger = logging.getLogger(__name__)

KERAS_BATCH_SIZE = 256
FILE_BROWSER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # "._x": macOS's copies, also


@dataclass(frozen=True, kw_only=True, eq=False)
class ExportResult:
    """Where the export went, its manifest and its report."""

    out_dir: Path
    spec: ModelSpec
    report: ExportReport

    @property
    def passed(self) -> bool:
        return self.report.passed

    def summary(self) -> str:
        return "\n".join([
            f"Exported {len(self.spec.variants)} variant(s) to {self.out_dir} "
            f"(default: {self.spec.default_variant}); "
            f"{self.report.test_images} test images from {self.report.test_source}",
            "",
            self.report.table(),
            "",
            self.report.verdict(),
        ])


def load_keras_model(model_path: Path) -> object:
    """A ``.keras`` (or legacy ``.h5``) model, loaded for inference only."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise ConversionError(f"model {model_path} does not exist")
    if not model_path.is_file() or model_path.suffix not in (".keras", ".h5"):
        raise ConversionError(
            f"{model_path} is not a Keras model file; expected the .keras file written by "
            "training (run_dir/model.keras)"
        )
    if model_path.suffix == ".keras" and not zipfile.is_zipfile(model_path):
        raise ConversionError(f"{model_path} is not a Keras model: a .keras file is a zip archive")
    import keras

    custom_objects = export_data.trainer_custom_objects()
    try:
        model = keras.models.load_model(model_path, custom_objects=custom_objects, compile=False)
    except (ValueError, TypeError, KeyError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConversionError(f"{model_path} cannot be loaded as a Keras model: {first_line}") from None
    return export_data.float32_model(model, custom_objects)


def model_io(model: object) -> tuple[tuple[int, int, int], int]:
    """(height, width, channels) of the model's input and the size of its output."""
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ConversionError("the model must have exactly one input and one output")
    input_shape = tuple(inputs[0].shape[1:])
    output_shape = tuple(outputs[0].shape[1:])
    if len(input_shape) != 3 or any(d is None for d in input_shape) or input_shape[2] not in (1, 3):
        raise ConversionError(
            f"the model input must be a fixed (height, width, 1 or 3) image; got {input_shape}"
        )
    if len(output_shape) != 1 or output_shape[0] is None:
        raise ConversionError(f"the model output must be one probability per class; got {output_shape}")
    return tuple(int(d) for d in input_shape), int(output_shape[0])


def _not_written_by_export(folder: Path) -> list[str]:
    """Entries of ``folder`` that no export writes, what replacing it must not delete (a file
    browser's own files, such as macOS's .DS_Store, are not the user's)."""
    export_files = {MANIFEST_NAME, REPORT_JSON, REPORT_MD, *(q.file_name for q in Quantization)}
    return sorted(
        entry.name + ("/" if entry.is_dir() else "")
        for entry in folder.iterdir()
        if not entry.is_file() or (entry.name not in export_files | FILE_BROWSER_FILES
                                   and not entry.name.startswith("._"))
    )


def _check_target(out_dir: Path, options: ExportOptions, inputs: list[Path]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out-dir {out_dir} exists and is not a folder")
    resolved = out_dir.resolve()
    if resolved == Path.cwd() or resolved in Path.cwd().parents:
        # the folder is replaced by renaming, which would pull the current folder away from under us
        raise ConfigError(
            f"--out-dir {out_dir} is the current folder or holds it; export into a folder of its own"
        )
    for path in inputs:
        if resolved == path.resolve() or resolved in path.resolve().parents:
            raise ConfigError(
                f"--out-dir {out_dir} contains the input {path}; export into a separate folder"
            )
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not options.force:
            raise ConfigError(
                f"{out_dir} already exists and is not empty; pass --force (force=True) to replace it"
            )
        foreign = _not_written_by_export(out_dir)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ConfigError(
                f"{out_dir} holds {shown}, which no export writes; --force replaces only an earlier "
                "export, so remove them or export into another folder"
            )


def _test_set(
    options: ExportOptions,
    training: export_data.TrainingData | None,
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> export_data.LabelledImages:
    class_names = training.class_names if training else None
    if options.test_dir is not None:
        test = export_data.load_class_folders(
            options.test_dir, input_shape, class_names, limit=options.test_limit, seed=options.seed
        )
    elif training is not None:
        test = training.load_split("test", limit=options.test_limit, seed=options.seed)
    else:
        raise ConfigError(
            "no test set: pass a class-folder directory (--test-dir) or a training config "
            "(--config, or config.yaml beside the model) whose test split to use"
        )
    if len(test.class_names) != num_classes:
        raise DataError(
            f"the test set has {len(test.class_names)} classes {list(test.class_names)} but the "
            f"model outputs {num_classes} probabilities; use the test set of this model's data"
        )
    images = export_data.check_images(test.images, input_shape, f"test images ({test.source})")
    return dataclasses.replace(test, images=images)


def _representative_set(
    options: ExportOptions,
    training: export_data.TrainingData | None,
    input_shape: tuple[int, int, int],
) -> np.ndarray:
    if options.representative_dir is not None:
        images = export_data.load_image_folder(
            options.representative_dir, input_shape,
            limit=options.representative_count, seed=options.seed,
        )
        source = str(options.representative_dir)
    elif training is not None:
        split = training.load_split("train", limit=options.representative_count, seed=options.seed)
        images, source = split.images, split.source
    else:
        raise ConfigError(
            "int8 needs representative images from the training set: pass --representative-dir "
            "or a training config (--config, or config.yaml beside the model)"
        )
    return export_data.check_images(images, input_shape, f"representative images ({source})")


def _check_training_config(training: export_data.TrainingData, input_shape: tuple[int, int, int]) -> None:
    height, width, channels = input_shape
    expected_channels = 1 if training.color_mode == "grayscale" else 3
    if (training.image_size, training.image_size, expected_channels) != (height, width, channels):
        raise ConfigError(
            f"{training.config_path} says {training.image_size}x{training.image_size} "
            f"{training.color_mode} input but the model takes {height}x{width}x{channels}; "
            "pass the config the model was trained with"
        )


def keras_probabilities(model: object, images: np.ndarray) -> np.ndarray:
    """The Keras model's probabilities for uint8 images (the reference of every variant)."""
    probabilities = np.asarray(
        model.predict(images.astype(np.float32), batch_size=KERAS_BATCH_SIZE, verbose=0), np.float32
    )
    if (
        not np.all(np.isfinite(probabilities))
        or probabilities.min() < -1e-4
        or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    ):
        raise ConversionError(
            "the model's outputs are not probabilities (rows must sum to 1); end the model with "
            "a softmax, since the runtime reads its output as class probabilities"
        )
    return probabilities


def _variant_metrics(keras: ClassificationMetrics, report: VerifyReport, test_images: int) -> dict[str, float]:
    return {
        "accuracy": report.metrics.accuracy,
        "top3_accuracy": report.metrics.top3_accuracy,
        "weighted_f1": report.metrics.weighted_f1,
        "agreement": report.agreement,
        "max_abs_diff": report.max_abs_diff,
        "latency_ms": report.latency_ms,
        "accuracy_drop_pp": accuracy_drop_pp(keras, report),
        "test_images": float(test_images),
    }


def _write_export(
    staging: Path,
    model: object,
    model_path: Path,
    options: ExportOptions,
    test: export_data.LabelledImages,
    reference: np.ndarray,
    representative: np.ndarray | None,
    input_shape: tuple[int, int, int],
) -> tuple[ModelSpec, ExportReport]:
    """Convert, describe, verify and report into ``staging``."""
    variants: dict[str, VariantSpec] = {}
    with tempfile.TemporaryDirectory(prefix="ers-export-") as temp:
        saved_model = save_saved_model(model, Path(temp) / "saved_model")
        for quantization in options.variants:
            logger.info("converting %s", quantization.value)
            path = staging / quantization.file_name
            path.write_bytes(convert_to_tflite(saved_model, quantization, representative,
                                               float_first_conv=options.float_first_conv))
            variants[quantization.value] = build_variant_spec(path, quantization)
    source_sha256 = sha256_of(model_path)
    spec = build_model_spec(
        labels=test.class_names, input_shape=input_shape, crop=options.crop,
        source_model_sha256=source_sha256, variants=variants,
    )
    keras_metrics = ClassificationMetrics.from_probabilities(test.labels, reference)
    gate = ExportGate(max_accuracy_drop=options.max_accuracy_drop, min_agreement=options.min_agreement)
    reports, failures = [], []
    for name, variant in spec.variants.items():
        logger.info("verifying %s", name)
        with EmotionClassifier(
            staging / variant.file, spec, variant, num_threads=options.num_threads
        ) as classifier:
            report = verify_tflite(
                classifier, test.images, test.labels, reference,
                latency_runs=options.latency_runs, warmup_runs=options.warmup_runs,
            )
        reports.append(report)
        failures.extend(gate.check(keras_metrics, report))
    spec = dataclasses.replace(spec, variants={
        r.variant: dataclasses.replace(
            spec.variants[r.variant], metrics=_variant_metrics(keras_metrics, r, len(test)),
            gate_failures=tuple(str(failure) for failure in failures if failure.variant == r.variant),
        )
        for r in reports
    })
    report = ExportReport(
        model_path=str(model_path),
        model_size_bytes=model_path.stat().st_size,
        source_model_sha256=source_sha256,
        test_source=test.source,
        test_images=len(test),
        representative_images=0 if representative is None else len(representative),
        keras=keras_metrics,
        variants=tuple(reports),
        gate=gate,
        failures=tuple(failures),
        machine=machine_info(),
    )
    spec.save(staging)
    report.save(staging)
    return spec, report


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished ``staging`` folder to ``out_dir``, replacing an old export."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    backup = out_dir.with_name(f".{out_dir.name}.replaced-{uuid.uuid4().hex[:8]}")
    out_dir.rename(backup)
    try:
        staging.rename(out_dir)
    except OSError:
        backup.rename(out_dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def export_model(
    model_path: Path, out_dir: Path, options: ExportOptions | None = None
) -> ExportResult:
    """Convert ``model_path`` to the TFLite variants of ``options``, verify each and write
    ``out_dir/{model_<variant>.tflite, manifest.json, report.json, report.md}``.

    Raises ``ExportGateTripped`` after writing when a variant fails the gate.
    """
    options = options or ExportOptions()
    model_path, out_dir = Path(model_path), Path(out_dir)
    inputs = [p for p in (model_path, options.config_path, options.test_dir, options.representative_dir) if p]
    _check_target(out_dir, options, inputs)
    config_path = export_data.find_training_config(model_path, options.config_path)
    model = load_keras_model(model_path)
    input_shape, num_classes = model_io(model)
    training = export_data.read_training_config(config_path) if config_path else None
    if training is not None:
        _check_training_config(training, input_shape)
    test = _test_set(options, training, input_shape, num_classes)
    representative = (
        _representative_set(options, training, input_shape) if options.needs_representative_data else None
    )
    reference = keras_probabilities(model, test.images)
    target = out_dir.resolve()  # renamed by name beside it: "." or "a/.." has none of its own
    make_folder(target.parent, f"the export folder {out_dir}")
    try:
        staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir()  # not mkdtemp's 0700: the export gets the permissions of any new folder
    except OSError as error:
        raise SinkError(f"cannot write the export folder {out_dir}: {error.strerror or error}") from None
    try:
        spec, report = _write_export(
            staging, model, model_path, options, test, reference, representative, input_shape
        )
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result = ExportResult(out_dir=out_dir, spec=spec, report=report)
    if not report.passed:
        variants = sorted({failure.variant for failure in report.failures})
        raise ExportGateTripped(
            f"export gate failed for {', '.join(variants)}:\n"
            + "\n".join(f"  - {failure}" for failure in report.failures)
            + f"\nThe export was written to {out_dir} (see {out_dir / 'report.md'}); do not deploy "
            "the failing variants: drop them with --variants, or re-train / re-calibrate "
            "(--representative-count) before exporting again.",
            result,
        )
    return result
