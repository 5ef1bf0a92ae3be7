"""Training configuration: frozen dataclasses, YAML/JSON files, ``--set`` overrides.

Defaults are the seed's ``Configuration`` dict (Model-3). Precedence is
``defaults < file < command line``. Field names are snake_case and grouped in
sections (``data``, ``augment``, ``cutmix``, ``model``, ``optim``, ``distill``, plus a few
top-level keys). A key can be written as

* the dotted path: ``model.num_filters``;
* the bare field name when it is unique: ``num_filters``;
* the seed's CamelCase name (files and ``--set``), see ``SEED_ALIASES``:

================== ============================
seed key           field
================== ============================
NoOfClasses        data.num_classes
ImageSize          data.image_size
BatchSize          data.batch_size
KernelSize         model.kernel_size
NoOfFilters        model.num_filters
NoOfUDense1        model.dense1_units
NoOfUDense2        model.dense2_units
DropOutRate        model.dropout_rate
RegularizationRate model.regularization_rate
NoOfStrides        model.strides
PoolSize           model.pool_size
PatchSize          model.patch_size
ProjDim            model.projection_dim
LearningRate       optim.learning_rate
NoOfEpochs         epochs
================== ============================

A file may nest sections (``model: {num_filters: 8}``), use flat keys, or hold
the seed's dict under ``Configuration:``. An unknown key is a ``ConfigError``
that suggests the closest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from edge.errors import ConfigError
from trainer.lowrank import parse_conv_ranks

CLASS_NAMES: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise",
)
DATA_FORMATS = ("auto", "folders", "ferplus", "fer2013_csv")
LABEL_MODES = ("majority", "soft")
COLOR_MODES = ("grayscale", "rgb")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
STRATEGIES = ("default", "mirrored", "multiworker")  # see trainer.distribute
MONITORS = ("val_accuracy", "val_loss")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # see trainer.precision
CALIBRATION_IMAGES = ("augmented", "plain")  # see OptimConfig.ema_calibration_images
INPUT_FITS = ("resize", "crop")  # see ModelConfig.input_fit
FIRST_BLOCK_DOWNSAMPLES = ("pool", "stride")  # see ModelConfig.first_block_downsample
# The vgg's architecture options beyond its widths: each makes the network cheaper (see ModelConfig).
# Other models refuse them (trainer.models); a distilled student's are not its teacher's (trainer.portable).
VGG_OPTIONS = ("first_block_convs", "conv_ranks", "input_size", "input_fit", "first_block_downsample")

SEED_ALIASES: dict[str, str] = {
    "NoOfClasses": "data.num_classes",
    "ImageSize": "data.image_size",
    "BatchSize": "data.batch_size",
    "KernelSize": "model.kernel_size",
    "NoOfFilters": "model.num_filters",
    "NoOfUDense1": "model.dense1_units",
    "NoOfUDense2": "model.dense2_units",
    "DropOutRate": "model.dropout_rate",
    "RegularizationRate": "model.regularization_rate",
    "NoOfStrides": "model.strides",
    "PoolSize": "model.pool_size",
    "PatchSize": "model.patch_size",
    "ProjDim": "model.projection_dim",
    "LearningRate": "optim.learning_rate",
    "NoOfEpochs": "epochs",
}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _positive(name: str, value: float) -> None:
    _check(value > 0, f"{name} must be > 0; got {value!r}")


def _fraction(name: str, value: float) -> None:
    _check(0.0 <= value <= 1.0, f"{name} must be in [0, 1]; got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, f"{name} must be one of {list(choices)}; got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the images are and how they become tensors.

    ``image_size`` is the model's input side (the loader resizes to it);
    ``num_classes`` must equal ``len(class_names)`` (a file that sets only
    ``class_names`` gets ``num_classes`` from it).
    """

    data_dir: Path | None = None
    format: str = "auto"
    image_size: int = 256
    color_mode: str = "rgb"
    class_names: tuple[str, ...] = CLASS_NAMES
    num_classes: int = 8
    batch_size: int = 32
    label_mode: str = "majority"
    exclude_list: Path | None = None
    dedup_valid: bool = True
    skip_bad_files: bool = False
    shuffle_buffer: int = 0  # 0 = the whole split

    def __post_init__(self) -> None:
        _choice("data.format", self.format, DATA_FORMATS)
        _choice("data.color_mode", self.color_mode, COLOR_MODES)
        _choice("data.label_mode", self.label_mode, LABEL_MODES)
        _check(self.image_size >= 8, f"data.image_size must be >= 8; got {self.image_size}")
        _positive("data.batch_size", self.batch_size)
        _check(len(self.class_names) >= 2, f"data.class_names needs 2+ names; got {list(self.class_names)}")
        _check(len(set(self.class_names)) == len(self.class_names),
               f"data.class_names must be unique; got {list(self.class_names)}")
        _check(self.num_classes == len(self.class_names),
               f"data.num_classes (NoOfClasses) is {self.num_classes} but data.class_names has "
               f"{len(self.class_names)} names {list(self.class_names)}; make them agree")
        _check(self.shuffle_buffer >= 0, f"data.shuffle_buffer must be >= 0; got {self.shuffle_buffer}")

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Training-only augmentation applied in tf.data; a strength of 0 turns one off."""

    enabled: bool = True
    rotation: float = 0.05  # fraction of a full turn (RandomRotation factor)
    flip: bool = True  # horizontal
    contrast: float = 0.2
    brightness: float = 0.2
    translation: float = 0.1
    zoom: float = 0.1
    noise_std: float = 5.0  # Gaussian noise, in pixel units of [0, 255]
    jitter_brightness: float = 0.1  # colour jitter, fraction of 255
    jitter_contrast: float = 0.1  # grayscale only
    jitter_saturation: float = 0.2  # rgb only
    jitter_hue: float = 0.02  # rgb only

    def __post_init__(self) -> None:
        for name in ("rotation", "contrast", "brightness", "translation", "zoom",
                     "jitter_brightness", "jitter_contrast", "jitter_saturation"):
            _fraction(f"augment.{name}", getattr(self, name))
        _check(self.noise_std >= 0, f"augment.noise_std must be >= 0; got {self.noise_std}")
        _check(0 <= self.jitter_hue <= 0.5, f"augment.jitter_hue must be in [0, 0.5]; got {self.jitter_hue}")


@dataclass(frozen=True, kw_only=True)
class CutMixConfig:
    enabled: bool = False
    alpha: float = 1.0
    probability: float = 0.5

    def __post_init__(self) -> None:
        _positive("cutmix.alpha", self.alpha)
        _fraction("cutmix.probability", self.probability)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture hyper-parameters (seed names in the module docstring)."""

    name: str = "lenet"
    kernel_size: int = 3
    num_filters: int = 6
    dense1_units: int = 1024
    dense2_units: int = 128
    dropout_rate: float = 0.2
    regularization_rate: float = 0.0
    strides: int = 1
    pool_size: int = 3
    patch_size: int = 16
    projection_dim: int = 769
    vit_layers: int = 4
    vit_heads: int = 4
    vit_mlp_dim: int = 1024
    # vgg: convolutions in the first block, the one at full resolution. 1 drops 18% of the
    # multiply-adds of the shipped network and 29% of its int8 time per face.
    first_block_convs: int = 2
    # vgg: convolutions split into a k x k one to fewer channels and a 1x1 one (``trainer.lowrank``),
    # as LAYER:RANK entries, e.g. ("block3_1:48", "block4_1:96"); a --pretrained model's trained
    # convolutions are split by SVD. Empty: none.
    conv_ranks: tuple[str, ...] = ()
    # vgg: the side its first layer resizes the image to, below data.image_size to work at a lower
    # resolution: 40 instead of 48 costs about 30% less int8 time per face. 0: data.image_size.
    input_size: int = 0
    # vgg: how the first layer brings the image to model.input_size: "resize" it (the whole crop,
    # fewer pixels per face) or "crop" its centre (the same pixels per face, less border).
    input_fit: str = "resize"
    # vgg: how the first block halves the resolution: "pool" (a max-pool after its convolutions) or
    # "stride" (its last convolution strides by 2, no pool): that convolution then has a quarter of
    # the output pixels, which is what its int8 time follows on AMX (docs/model.md).
    first_block_downsample: str = "pool"

    def __post_init__(self) -> None:
        _check(bool(self.name), "model.name must not be empty")
        for name in ("kernel_size", "num_filters", "dense1_units", "dense2_units", "strides",
                     "pool_size", "patch_size", "projection_dim", "vit_layers", "vit_heads", "vit_mlp_dim",
                     "first_block_convs"):
            _positive(f"model.{name}", getattr(self, name))
        _check(0 <= self.dropout_rate < 1, f"model.dropout_rate must be in [0, 1); got {self.dropout_rate}")
        _check(self.regularization_rate >= 0,
               f"model.regularization_rate must be >= 0; got {self.regularization_rate}")
        parse_conv_ranks(self.conv_ranks)
        _check(isinstance(self.input_size, int) and not isinstance(self.input_size, bool) and self.input_size >= 0,
               f"model.input_size must be a whole number >= 0 (0: data.image_size); got {self.input_size!r}")
        _check(self.input_fit in INPUT_FITS, f"model.input_fit must be one of {', '.join(INPUT_FITS)}; "
                                             f"got {self.input_fit!r}")
        _check(self.first_block_downsample in FIRST_BLOCK_DOWNSAMPLES,
               f"model.first_block_downsample must be one of {', '.join(FIRST_BLOCK_DOWNSAMPLES)}; "
               f"got {self.first_block_downsample!r}")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4  # adamw and sgd (decoupled: each step shrinks the weights by lr * weight_decay)
    momentum: float = 0.9  # sgd only (Nesterov)
    schedule: str = "constant"
    warmup_epochs: int = 0
    min_learning_rate: float = 1e-6
    label_smoothing: float = 0.0
    reduce_lr_on_plateau: bool = True  # constant schedule only
    reduce_lr_factor: float = 0.5
    reduce_lr_patience: int = 2
    # Polyak averaging: validate, select and save the exponential moving average of the weights
    # (Keras' optimizer ``use_ema``); 0 turns it off, 0.999 averages over about 1,000 steps.
    ema_momentum: float = 0.0
    # Training batches that re-estimate the BatchNormalization statistics for the averaged weights
    # before each validation (the average of the weights is not the weights the statistics came from).
    ema_calibration_batches: int = 50
    # Which training images those batches are: "augmented" (the training pipeline's) or "plain" (the same
    # images un-augmented, shuffled). Which suits a model depends on the augmentation its weights were
    # trained with (tools/norm_statistics.py; docs/model.md, "Normalisation statistics").
    ema_calibration_images: str = "augmented"
    # Keep every BatchNormalization layer in inference mode, its statistics and scale fixed (Keras'
    # ``trainable = False``): for fine-tuning a model whose statistics came from another pipeline.
    # Weight averaging then validates with those statistics: ema_calibration_batches is not used.
    freeze_norms: bool = False

    def __post_init__(self) -> None:
        _choice("optim.optimizer", self.optimizer, OPTIMIZERS)
        _choice("optim.schedule", self.schedule, SCHEDULES)
        _positive("optim.learning_rate", self.learning_rate)
        _check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0; got {self.weight_decay}")
        _check(0 <= self.momentum < 1, f"optim.momentum must be in [0, 1); got {self.momentum}")
        _check(self.warmup_epochs >= 0, f"optim.warmup_epochs must be >= 0; got {self.warmup_epochs}")
        _check(self.min_learning_rate >= 0, f"optim.min_learning_rate must be >= 0; got {self.min_learning_rate}")
        _check(0 <= self.label_smoothing < 1, f"optim.label_smoothing must be in [0, 1); got {self.label_smoothing}")
        _check(0 < self.reduce_lr_factor < 1, f"optim.reduce_lr_factor must be in (0, 1); got {self.reduce_lr_factor}")
        _check(self.reduce_lr_patience >= 0,
               f"optim.reduce_lr_patience must be >= 0; got {self.reduce_lr_patience}")
        _check(0 <= self.ema_momentum < 1, f"optim.ema_momentum must be in [0, 1); got {self.ema_momentum}")
        _check(self.ema_calibration_batches >= 0,
               f"optim.ema_calibration_batches must be >= 0; got {self.ema_calibration_batches}")
        _choice("optim.ema_calibration_images", self.ema_calibration_images, CALIBRATION_IMAGES)


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Knowledge distillation: train on a blend of the data's labels and trained teachers' predictions.

    ``teachers`` are saved models (``.keras``/``.h5`` of this project, same input
    and classes); their predictions on the training images, averaged over the
    teachers (and over a horizontal flip with ``flip``), are computed once
    before training and blended in: ``(1 - weight) * labels + weight * teachers``.
    With ``online`` they run on every augmented training batch instead, so the
    target fits the very view the student sees (about one teacher forward pass
    more per step; ``flip`` does not apply). No teachers: off.
    """

    teachers: tuple[str, ...] = ()
    weight: float = 0.5
    flip: bool = True
    online: bool = False

    def __post_init__(self) -> None:
        _check(0 < self.weight <= 1, f"distill.weight must be in (0, 1]; got {self.weight}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything one training run needs; ``TrainConfig()`` is the seed's setup."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cutmix: CutMixConfig = field(default_factory=CutMixConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    epochs: int = 25
    early_stopping_patience: int = 5  # 0 turns early stopping off
    monitor: str = "val_accuracy"
    seed: int = 42
    strategy: str = "default"
    precision: str = "float32"  # mixed_bfloat16 (CPU with AMX/AVX512-BF16), mixed_float16 (GPU); files stay float32
    logical_devices: int = 0  # mirrored only: split the CPU into N devices and mirror over them (0 = don't)
    run_dir: Path | None = None  # None = runs/<model.name>
    verbose: int = 1

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs)
        _check(self.early_stopping_patience >= 0,
               f"early_stopping_patience must be >= 0; got {self.early_stopping_patience}")
        _choice("monitor", self.monitor, MONITORS)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("precision", self.precision, PRECISIONS)
        _check(self.logical_devices >= 0, f"logical_devices must be >= 0; got {self.logical_devices}")
        _check(self.verbose in (0, 1, 2), f"verbose must be 0, 1 or 2; got {self.verbose}")
        _check(0 <= self.seed < 2**32, f"seed must be in [0, 2**32) (numpy's seeds); got {self.seed}")

    # ----------------------------------------------------------------- building
    @classmethod
    def from_file(cls, path: Path | str) -> TrainConfig:
        """Read a YAML or JSON file (e.g. a run folder's ``config.yaml``)."""
        return cls.from_dict(read_config_file(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        return resolve_config(data, (), source=source)

    def replace(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with ``{"section.field" | alias: value}`` applied (values coerced)."""
        return _apply(self, _normalise(overrides, "overrides", later_wins=True), "overrides")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "augment": AugmentConfig,
    "cutmix": CutMixConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "distill": DistillConfig,
}


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def known_keys() -> list[str]:
    """Every dotted key a config accepts."""
    keys = [f"{name}.{f.name}" for name, section in SECTIONS.items() for f in fields(section)]
    keys += [f.name for f in fields(TrainConfig) if f.name not in SECTIONS]
    return keys


def _leaf_index() -> dict[str, str]:
    index: dict[str, list[str]] = {}
    for key in known_keys():
        index.setdefault(key.rsplit(".", 1)[-1], []).append(key)
    return {leaf: paths[0] for leaf, paths in index.items() if len(paths) == 1}


def canonical_key(key: str, source: str = "config") -> str:
    """Map a dotted key, unique bare field name or seed CamelCase name to its dotted key."""
    known = known_keys()
    if key in known:
        return key
    if key in SEED_ALIASES:
        return SEED_ALIASES[key]
    leaves = _leaf_index()
    if key in leaves:
        return leaves[key]
    candidates = known + list(SEED_ALIASES) + list(leaves)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{source}: unknown config key {key!r}{hint}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Turn a YAML/JSON/command-line value into the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        hint = next(arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError("expected true/false")
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number = float(value)
            if not math.isfinite(number):  # inf passes every "> 0" check, and trains to a nan loss
                raise ValueError("expected a finite number")
            return number
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError("expected a string")
            return str(value)
        if hint is Path:
            return Path(str(value))
        if origin is tuple:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError("expected a list")
            return tuple(str(item) for item in value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: {key} got {value!r}: {error}") from None
    raise ConfigError(f"{source}: {key} has an unsupported type {hint}")  # pragma: no cover


def read_config_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                          "save it as UTF-8") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"config file {path} cannot be parsed: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys; got {type(data).__name__}")
    return data


def _normalise(data: dict[str, Any], source: str, *, later_wins: bool = False) -> dict[str, Any]:
    """Flatten a nested/flat/seed-style mapping into ``{dotted_key: value}``. A setting a file names
    twice (say ``model.num_filters`` and ``NoOfFilters``) with two values is refused; on the command
    line (``later_wins``) the later one wins, as a repeated flag does."""
    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in flat and flat[key] != value and not later_wins:
            raise ConfigError(f"{source}: {key} is given twice, as {flat[key]!r} and {value!r}")
        flat[key] = value

    for key, value in data.items():
        key = str(key)
        if key == "Configuration" and isinstance(value, dict):
            for sub, item in _normalise(value, source).items():
                put(sub, item)
        elif key in SECTIONS and isinstance(value, dict):
            for sub, item in value.items():
                put(canonical_key(f"{key}.{sub}", source), item)
        elif key in SECTIONS and value is None:  # "model:" with every setting under it commented out
            continue
        else:
            put(canonical_key(key, source), value)
    return flat


def _apply(base: TrainConfig, flat: dict[str, Any], source: str) -> TrainConfig:
    if "data.class_names" in flat and "data.num_classes" not in flat:
        names = _coerce("data.class_names", flat["data.class_names"], tuple[str, ...], source)
        flat = {**flat, "data.num_classes": len(names)}
    per_section: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        if "." in key:
            section, name = key.split(".", 1)
            hint = _field_types(SECTIONS[section])[name]
            per_section.setdefault(section, {})[name] = _coerce(key, value, hint, source)
        else:
            top[key] = _coerce(key, value, _field_types(TrainConfig)[key], source)
    try:
        for section, values in per_section.items():
            top[section] = dataclasses.replace(getattr(base, section), **values)
        return dataclasses.replace(base, **top)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def resolve_config(
    file_data: dict[str, Any] | None = None,
    overrides: typing.Iterable[str] | dict[str, Any] = (),
    *,
    source: str = "config",
    base: TrainConfig | None = None,
) -> TrainConfig:
    """defaults (or ``base``) < ``file_data`` < ``overrides`` (``key=value`` strings or a dict)."""
    config = base or TrainConfig()
    if file_data:
        config = _apply(config, _normalise(file_data, source), source)
    if isinstance(overrides, dict):
        pairs = overrides
    else:
        pairs = parse_overrides(overrides)
    if pairs:
        config = _apply(config, _normalise(pairs, "command line", later_wins=True), "command line")
    return config


def parse_overrides(items: typing.Iterable[str]) -> dict[str, Any]:
    """``["model.num_filters=8", "LearningRate=3e-4"]`` -> dict; values parsed as YAML."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value; got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        result.pop(key.strip(), None)  # a repeated key moves to its last place: the last --set wins
        result[key.strip()] = value
    return result
