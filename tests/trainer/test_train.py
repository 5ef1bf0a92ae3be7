from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TINY_SETS, tiny_overrides
from edge.cli import cli
from trainer.callbacks import lr_schedule
from trainer.config import TrainConfig, resolve_config
from trainer.train import train

ARTIFACTS = ("model.keras", "model.h5", "checkpoint.keras", "config.yaml", "history.csv", "metrics.json",
             "classification_report.txt", "confusion_matrix.png", "curves.png", "tensorboard", "run.json")


def invoke(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result


def history_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from conftest import make_class_folders

    root = tmp_path_factory.mktemp("train")
    data = make_class_folders(root / "data")
    run_dir = root / "run"
    result = invoke(["train", *tiny_overrides(data, run_dir)])
    assert result.exit_code == 0, result.output
    assert "next: ers export " in result.output and "--out-dir" in result.output
    return run_dir


def test_one_epoch_writes_every_artifact(finished_run: Path):
    for name in ARTIFACTS:
        assert (finished_run / name).exists(), name
    assert any((finished_run / "tensorboard").rglob("events.out.tfevents*"))
    assert not (finished_run / "backup").exists()
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert {"loss", "accuracy", "top3_accuracy", "weighted_f1", "classification_report",
            "confusion_matrix"} <= set(metrics)
    assert metrics["num_samples"] == 16 and len(metrics["confusion_matrix"]) == 8
    assert "anger" in metrics["classification_report"]
    assert len(history_rows(finished_run)) == 1
    cfg = TrainConfig.from_file(finished_run / "config.yaml")
    assert cfg.data.image_size == 16 and cfg.epochs == 1 and cfg.run_dir == finished_run
    model = keras.models.load_model(finished_run / "model.keras")
    assert model.input_shape == (None, 16, 16, 3)


def test_tensorboard_reads_the_run_logs(finished_run: Path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    logs = EventMultiplexer().AddRunsFromDirectory(str(finished_run / "tensorboard"))
    logs.Reload()
    runs = logs.Runs()
    assert set(runs) == {"train", "validation"}
    for run in runs:
        assert {"epoch_loss", "epoch_accuracy"} <= set(runs[run]["tensors"]), run
        assert len(logs.Tensors(run, "epoch_loss")) == 1  # one epoch, one point


def test_finished_run_is_not_overwritten(finished_run: Path, class_folders: Path):
    before = (finished_run / "model.keras").stat().st_mtime
    result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, finished_run)])
    assert result.exit_code == 1
    assert "finished run" in result.output and "--overwrite" in result.output
    assert "Traceback" not in result.output
    assert (finished_run / "model.keras").stat().st_mtime == before


def test_overwrite_replaces_a_finished_run(tmp_path: Path, class_folders: Path):
    run_dir = tmp_path / "run"
    assert invoke(["train", *tiny_overrides(class_folders, run_dir)]).exit_code == 0
    (run_dir / "marker").write_text("old")
    assert invoke(["train", *tiny_overrides(class_folders, run_dir), "--overwrite"]).exit_code == 0
    assert not (run_dir / "marker").exists() and (run_dir / "model.keras").is_file()


def test_an_overwrite_that_cannot_start_leaves_the_old_run_whole(tmp_path: Path, class_folders: Path):
    run_dir = tmp_path / "run"
    assert invoke(["train", *tiny_overrides(class_folders, run_dir)]).exit_code == 0
    before = sorted(p.name for p in run_dir.iterdir())
    missing_data = CliRunner().invoke(cli, ["train", *tiny_overrides(tmp_path / "nope", run_dir), "--overwrite"])
    assert missing_data.exit_code == 1 and "data directory does not exist" in missing_data.output
    own_model = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, run_dir), "--overwrite",
                                         "--no-train", "--pretrained", str(run_dir / "model.keras")])
    assert own_model.exit_code == 1 and "which --overwrite deletes" in own_model.output
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_run_dir_that_is_a_file_is_one_line(tmp_path: Path, class_folders: Path):
    (tmp_path / "a_file").write_text("x")
    for run_dir, says in ((tmp_path / "a_file", "is a file, not a folder"),
                          (tmp_path / "a_file" / "run",
                           f"cannot write the run folder {tmp_path / 'a_file' / 'run'}: {tmp_path / 'a_file'} is a file")):
        result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, run_dir)])
        assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output


class SimulatedKill(Exception):
    pass


class KillAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise SimulatedKill(f"killed before epoch {epoch}")


def test_resume_after_interruption(tmp_path: Path, class_folders: Path):
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(class_folders, run_dir), "--epochs", "3",
            "--set", "optim.schedule=cosine", "--set", "optim.warmup_epochs=1"]
    cfg = resolve_config(None, [*TINY_SETS, "optim.schedule=cosine", "optim.warmup_epochs=1"])
    cfg = cfg.replace({"data.data_dir": class_folders, "run_dir": run_dir, "epochs": 3, "data.batch_size": 8})
    with pytest.raises(SimulatedKill):
        train(cfg, extra_callbacks=[KillAtEpoch(1)])  # dies after epoch 1 of 3
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert len(history_rows(run_dir)) == 1 and (run_dir / "backup").is_dir()

    changed = CliRunner().invoke(cli, ["train", *args, "--set", "NoOfFilters=3"])
    assert changed.exit_code == 1 and "different config (model.num_filters)" in changed.output

    result = invoke(["train", *args])  # the same command again resumes
    assert result.exit_code == 0, result.output
    assert "(resumed)" in result.output
    rows = history_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    expected = [lr_schedule(cfg.optim, 3)(epoch) for epoch in range(3)]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx(expected, rel=1e-5)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert not (run_dir / "backup").exists()


def test_a_run_whose_evaluation_failed_is_evaluated_again_not_retrained(tmp_path: Path, class_folders: Path,
                                                                        monkeypatch):
    import trainer.evaluate

    run_dir = tmp_path / "run"
    real = trainer.evaluate.evaluate_model

    def failing(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the test evaluation

    monkeypatch.setattr(trainer.evaluate, "evaluate_model", failing)
    assert invoke(["train", *tiny_overrides(class_folders, run_dir)]).exit_code == 130
    assert json.loads((run_dir / "run.json").read_text())["status"] == "trained"
    trained = (run_dir / "model.keras").read_bytes()
    monkeypatch.setattr(trainer.evaluate, "evaluate_model", real)
    result = invoke(["train", *tiny_overrides(class_folders, run_dir)])
    assert result.exit_code == 0, result.output
    assert "(resumed)" in result.output and (run_dir / "metrics.json").is_file()
    assert (run_dir / "model.keras").read_bytes() == trained and len(history_rows(run_dir)) == 1
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_a_trained_run_is_not_given_more_epochs_or_another_model_to_evaluate(tmp_path: Path, class_folders: Path,
                                                                              monkeypatch, finished_run: Path):
    import trainer.evaluate

    run_dir = tmp_path / "run"
    real = trainer.evaluate.evaluate_model
    monkeypatch.setattr(trainer.evaluate, "evaluate_model", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert invoke(["train", *tiny_overrides(class_folders, run_dir)]).exit_code == 130
    monkeypatch.setattr(trainer.evaluate, "evaluate_model", real)
    more = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, run_dir), "--epochs", "3"])
    assert more.exit_code == 1 and "different config (epochs)" in more.output
    other = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, run_dir), "--no-train",
                                     "--pretrained", str(finished_run / "model.keras")])
    assert other.exit_code == 1 and "--no-train evaluates --pretrained into a folder of its own" in other.output
    assert TrainConfig.from_file(run_dir / "config.yaml").epochs == 1
    assert json.loads((run_dir / "run.json").read_text())["status"] == "trained"


def test_resume_flag_without_unfinished_run(tmp_path: Path, class_folders: Path):
    result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, tmp_path / "new"), "--resume"])
    assert result.exit_code == 1 and "no unfinished run" in result.output


def test_no_train_evaluates_pretrained(finished_run: Path, class_folders: Path, tmp_path: Path):
    run_dir = tmp_path / "eval_run"
    result = invoke(["train", *tiny_overrides(class_folders, run_dir), "--no-train",
                     "--pretrained", str(finished_run / "model.keras")])
    assert result.exit_code == 0, result.output
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "model.keras").exists()


def test_evaluate_command(finished_run: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = invoke(["evaluate", "--model", str(finished_run / "model.keras"), "--split", "val", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["num_samples"] == 16
    assert (out / "confusion_matrix.png").is_file() and (out / "classification_report.txt").is_file()


def test_evaluate_flip_average_scores_the_mean_of_each_image_and_its_mirror(finished_run: Path, tmp_path: Path):
    import keras
    import tensorflow as tf

    from trainer.evaluate import predict

    model = keras.models.load_model(finished_run / "model.keras", compile=False)
    images = np.random.default_rng(3).uniform(0, 255, (6, *model.input_shape[1:])).astype("float32")
    labels = np.eye(8, dtype="float32")[[0, 1, 2, 3, 4, 5]]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    _, plain = predict(model, dataset)
    _, averaged = predict(model, dataset, flip_average=True)
    mirrored = model.predict(images[:, :, ::-1], verbose=0)
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, atol=1e-5)
    out = tmp_path / "flip"
    result = invoke(["evaluate", "--model", str(finished_run / "model.keras"), "--split", "val", "--out", str(out),
                     "--flip-average"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["flip_average"] is True


def test_evaluate_scores_several_models_as_the_mean_of_their_probabilities(finished_run: Path, tmp_path: Path):
    import keras
    import tensorflow as tf

    from trainer.evaluate import predict

    model = keras.models.load_model(finished_run / "model.keras", compile=False)
    other = keras.models.clone_model(model)  # fresh weights: a second, different member
    other_path = tmp_path / "other.keras"
    other.save(other_path)
    images = np.random.default_rng(4).uniform(0, 255, (6, *model.input_shape[1:])).astype("float32")
    labels = np.eye(8, dtype="float32")[[0, 1, 2, 3, 4, 5]]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    _, first = predict(model, dataset, flip_average=True)
    _, second = predict(other, dataset, flip_average=True)
    assert not np.allclose(first, second, atol=1e-3)
    _, ensemble = predict([model, other], dataset, flip_average=True)
    np.testing.assert_allclose(ensemble, (first + second) / 2, atol=1e-5)

    result = invoke(["evaluate", "--model", str(finished_run / "model.keras"), "--model", str(other_path),
                     "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "next: ers export" not in result.output  # an ensemble is not one exportable model
    metrics = json.loads((finished_run / "eval_val_ensemble" / "metrics.json").read_text())
    assert metrics["models"] == [str(finished_run / "model.keras"), str(other_path)]
    assert metrics["num_samples"] == 16


def test_bad_data_is_one_line_error_before_training(tmp_path: Path, class_folders: Path):
    (class_folders / "val" / "sad" / "sad_0.png").write_bytes(b"")
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, run_dir)])
    assert result.exit_code == 1
    assert "sad_0.png" in result.output and "Traceback" not in result.output
    assert not (run_dir / "history.csv").exists()
    skipped = invoke(["train", *tiny_overrides(class_folders, run_dir), "--skip-bad"])  # same folder is fine
    assert skipped.exit_code == 0, skipped.output


def test_unknown_key_is_one_line_error(tmp_path: Path, class_folders: Path):
    result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, tmp_path / "r"), "--set", "NoOfFilter=3"])
    assert result.exit_code == 1 and "did you mean 'NoOfFilters'" in result.output


def test_help_is_fast_and_lists_options():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0 and "--set" in result.output and "--resume" in result.output


def test_pretrained_fine_tunes_the_configs_network_in_the_configs_precision(finished_run: Path, caplog):
    from trainer.precision import is_mixed, precision_policy
    from trainer.train import build_and_compile

    cfg = TrainConfig.from_file(finished_run / "config.yaml").replace(
        {"precision": "mixed_bfloat16", "model.dropout_rate": 0.125})
    saved = keras.models.load_model(finished_run / "model.keras")
    with precision_policy(cfg.precision):
        model = build_and_compile(cfg, finished_run / "model.keras")
        other = build_and_compile(cfg.replace({"model.num_filters": 3}), finished_run / "model.keras")
        evaluated = build_and_compile(cfg, finished_run / "model.keras", fine_tune=False)
    assert is_mixed(model) and model.layers[-1].compute_dtype == "float32"
    assert {layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)} == {0.125}
    for mine, theirs in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert not is_mixed(other) and "not the config's 'lenet' network" in caplog.text
    assert not is_mixed(evaluated)  # --no-train scores the model as saved


@pytest.mark.parametrize("images", ["augmented", "plain"])
def test_a_run_with_weight_averaging_finishes_and_saves_its_model(tmp_path: Path, class_folders: Path, images):
    run_dir = tmp_path / "run"
    result = invoke(["train", *tiny_overrides(class_folders, run_dir), "--epochs", "2",
                     "--set", "optim.ema_momentum=0.9", "--set", "optim.ema_calibration_batches=2",
                     "--set", f"optim.ema_calibration_images={images}"])
    assert result.exit_code == 0, result.output
    assert len(history_rows(run_dir)) == 2 and (run_dir / "model.keras").is_file()
    assert keras.models.load_model(run_dir / "model.keras").output_shape == (None, 8)


def test_pretrained_into_a_vgg_with_one_first_block_conv_keeps_the_other_layers_by_name(tmp_path: Path, caplog):
    import logging

    from trainer.models import build_model
    from trainer.train import build_and_compile

    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    saved = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    saved.save(tmp_path / "two_convs.keras")
    with caplog.at_level(logging.INFO, logger="trainer.train"):
        pruned = build_and_compile(cfg.replace({"model.first_block_convs": 1}), tmp_path / "two_convs.keras")
    names = {layer.name for layer in pruned.layers}
    assert "block1_1_conv" in names and "block1_2_conv" not in names and "block2_2_conv" in names
    for layer in pruned.layers:
        for mine, theirs in zip(layer.get_weights(), saved.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert "drops block1_2_conv, block1_2_bn" in caplog.text
    assert pruned.count_params() < saved.count_params()


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_norms_keeps_every_normalisation_as_it_was_while_the_rest_trains(freeze):
    from trainer.train import build_and_compile

    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale"},
                                 "optim": {"freeze_norms": freeze, "learning_rate": 0.01}})
    model = build_and_compile(cfg)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    before = [[w.copy() for w in layer.get_weights()] for layer in norms + convs[:1]]
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, 16, 16, 1)).astype(np.float32)
    labels = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 16)]
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    norm_kept = [all(np.array_equal(a, b) for a, b in zip(old, layer.get_weights()))
                 for old, layer in zip(before, norms)]
    assert norm_kept == [freeze] * len(norms)  # frozen: every one as it was; else every one moved
    assert not np.array_equal(before[-1][0], convs[0].get_weights()[0])  # the convolutions train either way
