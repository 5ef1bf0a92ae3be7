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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.errors import ManifestError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
COLOR_MODES = ("grayscale", "rgb")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")


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

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ManifestError(
                f"variant quantization must be one of {QUANTIZATIONS}; got {self.quantization!r}"
            )


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
        return data

    def save(self, directory: Path) -> Path:
        """Write ``manifest.json`` into ``directory`` and return its path."""
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> ModelSpec:
        try:
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ManifestError(f"{source}: unknown keys {unknown}")
            values = dict(data)
            values["labels"] = tuple(values["labels"])
            values["input_range"] = tuple(values.get("input_range", (0.0, 255.0)))
            values["crop"] = CropSpec(**values.get("crop", {}))
            values["variants"] = {
                name: VariantSpec(
                    **{
                        **variant,
                        "input": TensorSpec(**variant["input"]),
                        "output": TensorSpec(**variant["output"]),
                    }
                )
                for name, variant in values.get("variants", {}).items()
            }
            return cls(**values)
        except ManifestError as error:
            if str(error).startswith(source):
                raise
            raise ManifestError(f"{source}: {error}") from None
        except (KeyError, TypeError, AttributeError) as error:  # AttributeError: a list where an object belongs
            raise ManifestError(f"{source} is malformed: {error}") from None

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
