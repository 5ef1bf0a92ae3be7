"""What `ers export` should produce and how strictly it checks it (TensorFlow-free).

``ExportOptions()`` holds the recommended settings: all four variants, 300
representative images for int8, and a gate that fails an export whose variant
loses more than 1 percentage point of accuracy, or agrees with the Keras model
on fewer than 98% of the test images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from edge.errors import ConfigError
from edge.model_spec import CropSpec


class Quantization(str, Enum):
    """How a variant stores its weights and activations."""

    FLOAT32 = "float32"  # plain conversion, the reference for the others
    FLOAT16 = "float16"  # weights stored as float16, computed in float32
    DYNAMIC = "dynamic"  # int8 weights, float activations (no calibration data)
    INT8 = "int8"  # int8 weights and activations; float_first_conv keeps the image's convolution float32

    @property
    def file_name(self) -> str:
        return f"model_{self.value}.tflite"

    @property
    def needs_representative_data(self) -> bool:
        return self is Quantization.INT8

    @classmethod
    def parse(cls, value: str | Quantization) -> Quantization:
        """The member named by ``value``; a clear error lists the valid names."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(
                f"unknown variant {value!r}; choose from {[q.value for q in cls]}"
            ) from None


ALL_VARIANTS: tuple[Quantization, ...] = tuple(Quantization)


def parse_variants(text: str) -> tuple[Quantization, ...]:
    """``"float32,int8"`` -> (FLOAT32, INT8); the form the CLI and YAML pass."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    return tuple(Quantization.parse(name) for name in names)


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """Settings of one export; every path is optional.

    Data: the test set is ``test_dir`` (class folders ``DIR/<label>/*.png``) or,
    when unset, the test split of the training config (``config_path``, by
    default ``config.yaml`` beside the model). The int8 calibration images are
    ``representative_dir`` (class folders or a flat folder of images) or the
    config's training split.

    ``float_first_conv`` keeps the int8 variant's convolution that reads the
    image in float32 (``export.convert.convert_to_tflite`` says why): the
    variant then takes float32 pixels and gives float32 probabilities, which
    its manifest entry records.
    """

    variants: tuple[Quantization, ...] = ALL_VARIANTS
    config_path: Path | None = None
    test_dir: Path | None = None
    representative_dir: Path | None = None
    representative_count: int = 300
    test_limit: int | None = None
    max_accuracy_drop: float = 1.0  # percentage points below the Keras model
    min_agreement: float = 0.98  # fraction of test images with the same top-1 as Keras
    crop: CropSpec = field(default_factory=CropSpec)
    num_threads: int | None = None
    latency_runs: int = 200
    warmup_runs: int = 10
    seed: int = 0
    force: bool = False
    float_first_conv: bool = True

    def __post_init__(self) -> None:
        variants = tuple(Quantization.parse(v) for v in self.variants)
        if not variants:
            raise ConfigError("variants must name at least one of float32, float16, dynamic, int8; got none")
        if len(set(variants)) != len(variants):
            raise ConfigError(f"variants must not repeat; got {[v.value for v in variants]}")
        object.__setattr__(self, "variants", variants)
        for name in ("config_path", "test_dir", "representative_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        _check_int("representative_count", self.representative_count, minimum=1)
        if self.test_limit is not None:
            _check_int("test_limit", self.test_limit, minimum=1)
        if not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise ConfigError(
                f"max_accuracy_drop is in percentage points and must be in [0, 100]; "
                f"got {self.max_accuracy_drop}"
            )
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(
                f"min_agreement is a fraction and must be in [0, 1]; got {self.min_agreement}"
                + (" (did you mean a percentage? pass e.g. 0.98)" if self.min_agreement > 1 else "")
            )
        if not isinstance(self.crop, CropSpec):
            raise ConfigError(f"crop must be a CropSpec; got {type(self.crop).__name__}")
        if self.num_threads is not None:
            _check_int("num_threads", self.num_threads, minimum=1)
        if not isinstance(self.float_first_conv, bool):
            raise ConfigError(f"float_first_conv must be true or false; got {self.float_first_conv!r}")
        _check_int("latency_runs", self.latency_runs, minimum=1)
        _check_int("warmup_runs", self.warmup_runs, minimum=0)

    @property
    def needs_representative_data(self) -> bool:
        return any(v.needs_representative_data for v in self.variants)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")
