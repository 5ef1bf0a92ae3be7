"""The contract between trainer, export and runtime: ``manifest.json``.

One file beside the exported ``.tflite`` variants says everything the runtime
needs to feed a model and read its output: labels in output order, input size
and colour mode, the pixel range the model expects, how a detector box becomes
the training-style face crop, and per variant the file, its hash, tensor dtypes
and quantization parameters. The runtime hard-codes none of these.

TensorFlow-free on purpose: ``export`` writes it, ``edge`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.errors import ManifestError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
COLOR_MODES = ("grayscale", "rgb")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
TENSOR_DTYPES = ("float32", "int8", "uint8")  # what a model's input and output tensors may hold


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ManifestError(message)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large models do not fill memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class CropSpec:
    """How a detector's face box becomes the crop the model was trained on.

    The crop is centred on the box centre moved down by ``shift_y`` box
    heights, and its side is ``scale`` times the box's larger side (a square
    crop when ``square``; else the box scaled on each axis). Parts outside the
    frame are clamped to the frame edge.
    """

    scale: float = 1.0
    shift_y: float = 0.0
    square: bool = True

    def __post_init__(self) -> None:
        _require(_is_number(self.scale), f"crop.scale must be a number; got {self.scale!r}")
        _require(_is_number(self.shift_y), f"crop.shift_y must be a number; got {self.shift_y!r}")
        _require(isinstance(self.square, bool), f"crop.square must be true or false; got {self.square!r}")
        if not 0.2 <= self.scale <= 5.0:
            raise ManifestError(f"crop.scale must be in [0.2, 5.0]; got {self.scale}")
        if not -1.0 <= self.shift_y <= 1.0:
            raise ManifestError(f"crop.shift_y must be in [-1, 1]; got {self.shift_y}")


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """dtype and affine quantization of one model tensor (scale 0 = not quantized)."""

    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        _require(self.dtype in TENSOR_DTYPES, f"dtype must be one of {TENSOR_DTYPES}; got {self.dtype!r}")
        _require(_is_number(self.scale) and self.scale >= 0.0, f"scale must be a number >= 0; got {self.scale!r}")
        _require(_is_whole(self.zero_point), f"zero_point must be a whole number; got {self.zero_point!r}")

    @property
    def quantized(self) -> bool:
        return self.scale > 0.0


@dataclass(frozen=True, kw_only=True)
class VariantSpec:
    """One exported ``.tflite`` file and what was measured on it."""

    file: str
    quantization: str
    input: TensorSpec
    output: TensorSpec
    size_bytes: int
    sha256: str
    metrics: dict[str, float] = field(default_factory=dict)
    gate_failures: tuple[str, ...] = ()  # why the export gate failed this variant: not to be deployed

    @property
    def passed_gate(self) -> bool:
        return not self.gate_failures

    def __post_init__(self) -> None:
        _require(
            isinstance(self.file, str) and self.file not in ("", ".", "..") and Path(self.file).name == self.file,
            f"file must name a file in the model folder; got {self.file!r}",
        )
        if self.quantization not in QUANTIZATIONS:
            raise ManifestError(
                f"variant quantization must be one of {QUANTIZATIONS}; got {self.quantization!r}"
            )
        _require(isinstance(self.input, TensorSpec) and isinstance(self.output, TensorSpec),
                 "input and output must describe tensors")
        _require(_is_whole(self.size_bytes) and self.size_bytes >= 0,
                 f"size_bytes must be a whole number >= 0; got {self.size_bytes!r}")
        _require(isinstance(self.sha256, str), f"sha256 must be text; got {self.sha256!r}")
        _require(isinstance(self.metrics, dict), f"metrics must be a JSON object; got {self.metrics!r}")
        _require(isinstance(self.gate_failures, tuple) and all(isinstance(f, str) for f in self.gate_failures),
                 f"gate_failures must be a list of messages; got {self.gate_failures!r}")


def _fields_of(cls: type, data: object) -> dict[str, Any]:
    """``data``'s keys, checked against the fields of the dataclass ``cls``: none unknown, none missing."""
    _require(isinstance(data, dict), f"must be a JSON object; got {data!r}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    _require(not unknown, f"unknown keys {unknown}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    _require(not missing, f"missing {', '.join(repr(name) for name in missing)}")
    return dict(data)


def _listed(value: object, name: str) -> tuple:
    _require(isinstance(value, (list, tuple)), f"{name} must be a JSON list; got {value!r}")  # tuple: to_dict()'s
    return tuple(value)


def _crop(data: object) -> CropSpec:
    """The manifest's ``CropSpec`` (its own checks name ``crop.scale`` and the others)."""
    try:
        values = _fields_of(CropSpec, data)
    except ManifestError as error:
        raise ManifestError(f"crop: {error}") from None
    return CropSpec(**values)


def _variant(name: str, data: object) -> VariantSpec:
    """The ``VariantSpec`` of the manifest's variant ``name``; errors say which variant."""
    try:
        values = _fields_of(VariantSpec, data)
        values["gate_failures"] = _listed(values.get("gate_failures", []), "gate_failures")
        for tensor in ("input", "output"):
            try:
                values[tensor] = TensorSpec(**_fields_of(TensorSpec, values[tensor]))
            except ManifestError as error:
                raise ManifestError(f"{tensor} {error}") from None
        return VariantSpec(**values)
    except ManifestError as error:
        raise ManifestError(f"variant {name!r}: {error}") from None


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Everything the runtime needs to know about an exported model."""

    labels: tuple[str, ...]
    input_height: int
    input_width: int
    color_mode: str = "grayscale"
    input_range: tuple[float, float] = (0.0, 255.0)
    crop: CropSpec = field(default_factory=CropSpec)
    source_model_sha256: str = ""
    variants: dict[str, VariantSpec] = field(default_factory=dict)
    default_variant: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _require(
            isinstance(self.labels, tuple) and all(isinstance(label, str) and label for label in self.labels),
            f"labels must be a list of class names; got {self.labels!r}",
        )
        _require(_is_whole(self.input_height) and _is_whole(self.input_width),
                 f"input_height and input_width must be whole numbers; got {self.input_height!r}, "
                 f"{self.input_width!r}")
        _require(
            isinstance(self.input_range, tuple) and len(self.input_range) == 2
            and all(_is_number(value) for value in self.input_range) and self.input_range[0] < self.input_range[1],
            f"input_range must be [low, high] with low < high; got {list(self.input_range)!r}",
        )
        for name in ("color_mode", "source_model_sha256", "default_variant"):
            _require(isinstance(getattr(self, name), str), f"{name} must be text; got {getattr(self, name)!r}")
        _require(isinstance(self.variants, dict), f"variants must be a JSON object; got {self.variants!r}")
        if len(self.labels) < 2:
            raise ManifestError(f"labels must name at least 2 classes; got {list(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ManifestError(f"labels must be unique; got {list(self.labels)}")
        if self.input_height < 8 or self.input_width < 8:
            raise ManifestError(
                f"input size must be at least 8x8; got {self.input_height}x{self.input_width}"
            )
        if self.color_mode not in COLOR_MODES:
            raise ManifestError(f"color_mode must be one of {COLOR_MODES}; got {self.color_mode!r}")
        if self.default_variant and self.default_variant not in self.variants:
            raise ManifestError(
                f"default_variant {self.default_variant!r} is not among the variants "
                f"{sorted(self.variants)}"
            )

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image, without the batch axis."""
        return (self.input_height, self.input_width, self.channels)

    def variant(self, name: str | None = None) -> VariantSpec:
        """The named variant, or the default one; a clear error lists what exists."""
        name = name or self.default_variant or next(iter(self.variants), "")
        if name not in self.variants:
            raise ManifestError(
                f"model variant {name!r} is not in the manifest; available: {sorted(self.variants)}"
            )
        return self.variants[name]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["input_range"] = list(self.input_range)
        for variant in data["variants"].values():
            if variant["gate_failures"]:
                variant["gate_failures"] = list(variant["gate_failures"])
            else:  # only a failed variant carries it: a runtime before the field reads every other manifest
                del variant["gate_failures"]
        return data

    def save(self, directory: Path) -> Path:
        """Write ``manifest.json`` into ``directory`` and return its path."""
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> ModelSpec:
        """The spec a manifest's JSON object describes; a bad key, type or value is a ManifestError
        that names ``source`` and the field."""
        try:
            values = _fields_of(cls, data)
            values["labels"] = _listed(values["labels"], "labels")
            values["input_range"] = _listed(values.get("input_range", [0.0, 255.0]), "input_range")
            values["crop"] = _crop(values.get("crop", {}))
            variants = values.get("variants", {})
            _require(isinstance(variants, dict), f"variants must be a JSON object; got {variants!r}")
            values["variants"] = {name: _variant(name, variant) for name, variant in variants.items()}
            return cls(**values)
        except ManifestError as error:
            raise ManifestError(f"{source}: {error}") from None

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        """Read a manifest from a file, or from ``manifest.json`` inside a folder."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(
                f"no model manifest at {path}; point to a folder written by `ers export`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ManifestError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{path} must hold a JSON object")
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"{path} has format_version {version}; this runtime reads {FORMAT_VERSION}"
            )
        return cls.from_dict(data, source=str(path))
