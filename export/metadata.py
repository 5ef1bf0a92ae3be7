"""Build the ``ModelSpec`` (``manifest.json``) that describes an export.

Tensor dtypes and quantization parameters are read from the converted files
themselves (interpreter tensor details, no inference), so the manifest states
what the files are, not what the converter was asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edge.errors import ManifestError
from edge.model_spec import CropSpec, ModelSpec, TensorSpec, VariantSpec, sha256_of
from export.options import Quantization

# The runtime default: the smallest, fastest variant that exists.
DEFAULT_VARIANT_ORDER = (
    Quantization.INT8,
    Quantization.DYNAMIC,
    Quantization.FLOAT16,
    Quantization.FLOAT32,
)


def _tensor_spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(
        dtype=np.dtype(detail["dtype"]).name, scale=float(scale), zero_point=int(zero_point)
    )


def read_tensor_specs(tflite_path: Path) -> tuple[TensorSpec, TensorSpec]:
    """(input, output) TensorSpec of a single-input, single-output ``.tflite`` file."""
    try:
        interpreter = Interpreter(model_path=str(tflite_path))
    except ValueError as error:
        raise ManifestError(f"{tflite_path} is not a loadable TFLite model: {error}") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ManifestError(
            f"{tflite_path.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "an emotion model needs exactly one of each"
        )
    return _tensor_spec(inputs[0]), _tensor_spec(outputs[0])


def build_variant_spec(
    tflite_path: Path, quantization: Quantization, metrics: Mapping[str, float] | None = None
) -> VariantSpec:
    """The manifest entry of one written ``.tflite`` file."""
    tflite_path = Path(tflite_path)
    input_spec, output_spec = read_tensor_specs(tflite_path)
    return VariantSpec(
        file=tflite_path.name,
        quantization=Quantization(quantization).value,
        input=input_spec,
        output=output_spec,
        size_bytes=tflite_path.stat().st_size,
        sha256=sha256_of(tflite_path),
        metrics=dict(metrics or {}),
    )


def color_mode_of(channels: int) -> str:
    if channels == 1:
        return "grayscale"
    if channels == 3:
        return "rgb"
    raise ManifestError(f"a model input needs 1 (grayscale) or 3 (rgb) channels; got {channels}")


def default_variant_of(names: Mapping[str, object] | tuple[str, ...]) -> str:
    """"int8" when present, else the next in ``DEFAULT_VARIANT_ORDER``."""
    return next((q.value for q in DEFAULT_VARIANT_ORDER if q.value in names), "")


def build_model_spec(
    *,
    labels: tuple[str, ...],
    input_shape: tuple[int, int, int],
    crop: CropSpec,
    source_model_sha256: str,
    variants: Mapping[str, VariantSpec],
) -> ModelSpec:
    """The manifest of an export; ``input_shape`` is the model's (height, width, channels)."""
    height, width, channels = input_shape
    return ModelSpec(
        labels=tuple(labels),
        input_height=int(height),
        input_width=int(width),
        color_mode=color_mode_of(int(channels)),
        input_range=(0.0, 255.0),
        crop=crop,
        source_model_sha256=source_model_sha256,
        variants=dict(variants),
        default_variant=default_variant_of(tuple(variants)),
    )
