from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.errors import ConfigError
from trainer.config import (
    CLASS_NAMES, SEED_ALIASES, TrainConfig, canonical_key, parse_overrides, resolve_config,
)

SEED_CONFIGURATION = {
    "NoOfClasses": 8, "ImageSize": 256, "KernelSize": 3, "BatchSize": 32, "LearningRate": 1e-3,
    "NoOfEpochs": 25, "NoOfFilters": 6, "NoOfUDense1": 1024, "NoOfUDense2": 128, "DropOutRate": 0.2,
    "RegularizationRate": 0.0, "NoOfStrides": 1, "PoolSize": 3, "PatchSize": 16, "ProjDim": 769,
}


def get(cfg: TrainConfig, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("seed_key,value", sorted(SEED_CONFIGURATION.items()))
def test_defaults_are_the_seed_configuration(seed_key, value):
    assert get(TrainConfig(), SEED_ALIASES[seed_key]) == value


def test_every_seed_key_has_an_alias():
    assert set(SEED_ALIASES) == set(SEED_CONFIGURATION)


def test_extra_defaults():
    cfg = TrainConfig()
    assert cfg.data.class_names == CLASS_NAMES == (
        "anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert cfg.early_stopping_patience == 5
    assert cfg.strategy == "default"
    assert cfg.model.name == "lenet"
    assert not cfg.cutmix.enabled


def test_seed_dict_file_and_nested_sections(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("Configuration:\n  NoOfFilters: 8\n  LearningRate: 3.0e-4\n"
                    "model:\n  name: vit\noptim:\n  schedule: cosine\n  warmup_epochs: 2\n")
    cfg = TrainConfig.from_file(path)
    assert cfg.model.num_filters == 8 and cfg.model.name == "vit"
    assert cfg.optim.learning_rate == pytest.approx(3e-4)
    assert cfg.optim.schedule == "cosine" and cfg.optim.warmup_epochs == 2


def test_json_file(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"BatchSize": 4, "data.color_mode": "grayscale", "cutmix": {"enabled": True}}))
    cfg = TrainConfig.from_file(path)
    assert cfg.data.batch_size == 4 and cfg.data.channels == 1 and cfg.cutmix.enabled


def test_precedence_defaults_file_cli(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("NoOfEpochs: 10\nBatchSize: 16\n")
    from trainer.config import read_config_file

    cfg = resolve_config(read_config_file(path), ["epochs=3"])
    assert cfg.epochs == 3  # CLI beats file
    assert cfg.data.batch_size == 16  # file beats default
    assert cfg.model.num_filters == 6  # default


@pytest.mark.parametrize("item,key,value", [
    ("LearningRate=1e-3", "optim.learning_rate", 1e-3),
    ("optim.learning_rate=2e-4", "optim.learning_rate", 2e-4),
    ("label_smoothing=0.1", "optim.label_smoothing", 0.1),
    ("augment.flip=false", "augment.flip", False),
    ("class_names=anger,happy", "data.class_names", ("anger", "happy")),
    ("data_dir=/tmp/x", "data.data_dir", Path("/tmp/x")),
    ("run_dir=none", "run_dir", None),
])
def test_set_overrides_are_coerced(item, key, value):
    cfg = resolve_config(None, [item])
    assert get(cfg, key) == value


def test_class_names_set_num_classes():
    assert resolve_config({"class_names": ["a", "b", "c"]}).data.num_classes == 3


@pytest.mark.parametrize("key,suggestion", [
    ("NoOfFilter", "NoOfFilters"), ("learning_rat", "learning_rate"), ("model.num_filter", "model.num_filters"),
])
def test_unknown_key_suggests(key, suggestion):
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'"):
        canonical_key(key)


@pytest.mark.parametrize("overrides,match", [
    (["optim.optimizer=rmsprop"], "optim.optimizer"),
    (["epochs=0"], "epochs"),
    (["NoOfClasses=7"], "num_classes"),
    (["strategy=horovod"], "strategy"),
    (["optim.ema_calibration_images=clean"], "optim.ema_calibration_images"),
    (["logical_devices=-1"], "logical_devices"),
    (["BatchSize=abc"], "batch_size"),
    (["epochs"], "key=value"),
    (["seed=-1"], "seed must be in"),
    (["LearningRate=.inf"], "expected a finite number"),
    (["cutmix.alpha=inf"], "expected a finite number"),
    (["seed=4294967296"], "seed must be in"),
])
def test_bad_values_name_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(None, overrides)


def test_yaml_round_trip(tmp_path: Path):
    cfg = resolve_config(None, ["model.name=vit", "data_dir=/data", "run_dir=/runs/x", "cutmix.enabled=true"])
    assert TrainConfig.from_file(cfg.save(tmp_path / "config.yaml")) == cfg


def test_parse_overrides_keeps_strings():
    assert parse_overrides(["model.name=lenet", "x=1"]) == {"model.name": "lenet", "x": 1}


RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_committed_recipe_loads(recipe: Path):
    from trainer.models import MODEL_BUILDERS

    cfg = TrainConfig.from_file(recipe)
    assert cfg.model.name in MODEL_BUILDERS and cfg.epochs > 0


def test_the_averaging_stage_keeps_the_first_stages_data_augmentation_and_network():
    # The second-stage recipe repeats these sections (a file cannot include another): keep them equal.
    first = TrainConfig.from_file(RECIPES / "ferplus_vgg.yaml").to_dict()
    second = TrainConfig.from_file(RECIPES / "ferplus_vgg_ema.yaml").to_dict()
    for section in ("data", "augment", "cutmix", "model", "distill", "precision", "seed"):
        assert second[section] == first[section], section


def test_a_config_file_that_is_not_utf8_says_so(tmp_path: Path):
    path = tmp_path / "notepad.yaml"
    path.write_bytes("epochs: 3\n".encode("utf-16"))  # with the byte-order mark Windows Notepad writes
    with pytest.raises(ConfigError, match="notepad.yaml is not UTF-8 text"):
        TrainConfig.from_file(path)


def test_an_empty_section_is_empty_and_a_key_given_twice_is_refused(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nmodel:\n  # num_filters: 4\n")
    assert TrainConfig.from_file(path).epochs == 3
    path.write_text("model:\n  num_filters: 4\nnum_filters: 8\n")
    with pytest.raises(ConfigError, match=r"model.num_filters is given twice, as 4 and 8"):
        TrainConfig.from_file(path)
    path.write_text("model:\n  num_filters: 4\nNoOfFilters: 4\n")  # the same value twice is fine
    assert TrainConfig.from_file(path).model.num_filters == 4


def test_on_the_command_line_the_later_of_two_spellings_wins():
    cfg = resolve_config(None, ["LearningRate=1e-3", "optim.learning_rate=3e-4"])
    assert cfg.optim.learning_rate == 3e-4
    cfg = resolve_config(None, ["model.num_filters=8", "NoOfFilters=16", "model.num_filters=32"])
    assert cfg.model.num_filters == 32
