"""``train(cfg) -> TrainResult``: validate data, build, fit, save, evaluate on test.

Run folder (``cfg.run_dir``, default ``runs/<model name>``)::

    config.yaml  run.json  history.csv  checkpoint.keras  model.keras  model.h5
    tensorboard/  backup/ (only while unfinished)  metrics.json
    classification_report.txt  confusion_matrix.png  curves.png

A folder whose run is unfinished (``run.json`` says ``running``) is resumed;
one that says ``trained`` (its model saved, its test evaluation cut short) is
evaluated again, not retrained. A finished one is never overwritten unless
``overwrite=True``, which deletes it only once the new run's data and model
have loaded.

``cfg.strategy`` picks the ``tf.distribute`` strategy (``trainer.distribute``):
``default``, ``mirrored`` or ``multiworker``. Under ``multiworker`` only the
chief writes the run folder; the other workers write a temporary folder
beside it that is deleted at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from edge.errors import ConfigError, ErsError, SinkError
from edge.folders import make_folder
from trainer.callbacks import backup_epoch
from trainer.config import TrainConfig
from trainer.lowrank import factorize_kernel

log = logging.getLogger(__name__)

CONFIG_YAML = "config.yaml"
RUN_JSON = "run.json"
MODEL_KERAS = "model.keras"
MODEL_H5 = "model.h5"
# Keys that may differ when an interrupted run is resumed.
RESUMABLE_CHANGES = frozenset({"epochs", "verbose", "data.skip_bad_files"})


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    resumed: bool
    epochs_completed: int
    seconds: float
    chief: bool = True  # False on a multiworker run's other workers, which keep no files

    def summary(self) -> str:
        m = self.metrics
        where = "" if self.chief else " (written by the chief; this worker's temporary folder is deleted)"
        lines = [
            f"run folder: {self.run_dir}" + (" (resumed)" if self.resumed else "") + where,
            f"epochs completed: {self.epochs_completed}  time: {self.seconds:.0f} s",
            f"test: loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  top-3 {m['top3_accuracy']:.4f}  "
            f"weighted F1 {m['weighted_f1']:.4f}" if m else "test: evaluated by the chief (its metrics.json)",
        ]
        return "\n".join(lines)


def run_status(run_dir: Path) -> str | None:
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("status")
    except json.JSONDecodeError:
        return "running"


def _write_status(run_dir: Path, status: str, **extra: Any) -> None:
    (Path(run_dir) / RUN_JSON).write_text(json.dumps({"status": status, "time": time.time(), **extra}) + "\n")


def _flat(cfg: TrainConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, dict):
            out.update({f"{key}.{sub}": item for sub, item in value.items()})
        else:
            out[key] = value
    return out


class RunDirPlan(NamedTuple):
    """What ``prepare_run_dir`` found the run folder to be for: resuming a run (``trained``: one
    whose model is saved and only its test evaluation is left), or replacing one (``overwrite``)."""

    resuming: bool = False
    replacing: bool = False
    trained: bool = False


def prepare_run_dir(
    cfg: TrainConfig, *, resume: bool | None, overwrite: bool, run_dir: Path | None = None
) -> RunDirPlan:
    """Check the run folder for a new, resumed or (with ``overwrite``) replaced run. Nothing is
    deleted here: ``write_run_dir`` clears a replaced run once the new run's data and model have
    loaded, so a run that cannot start leaves the old one whole.

    ``run_dir`` is the folder to prepare when it is not ``cfg.run_dir`` (a
    multiworker run's non-chief worker writes a temporary folder).
    """
    run_dir = Path(cfg.run_dir if run_dir is None else run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder")
    status = run_status(run_dir)
    has_files = run_dir.is_dir() and any(run_dir.iterdir())
    if overwrite and has_files:
        if status is None:
            raise ConfigError(f"{run_dir} is not a run folder of `ers train` (no {RUN_JSON}); "
                              "refusing to delete it; choose another --run-dir")
        return RunDirPlan(replacing=True)
    if status in ("finished", "evaluated"):
        raise ConfigError(f"{run_dir} holds a finished run; pass --overwrite to replace it "
                          "or choose another --run-dir")
    if status == "running" and backup_epoch(run_dir) is None:
        log.info("%s holds a run that stopped before its first epoch ended; starting it again", run_dir)
        return RunDirPlan()
    if status in ("running", "trained"):  # trained: saved, and stopped in the test evaluation
        if resume is False:
            raise ConfigError(f"{run_dir} holds an unfinished run; resume it (--resume) or pass --overwrite")
        saved = TrainConfig.from_file(run_dir / CONFIG_YAML) if (run_dir / CONFIG_YAML).is_file() else None
        if saved is not None:
            old, new = _flat(saved), _flat(cfg)
            resumable = RESUMABLE_CHANGES - ({"epochs"} if status == "trained" else set())  # none left to train
            changed = sorted(k for k in new if old.get(k) != new[k] and k not in resumable)
            if changed:
                raise ConfigError(
                    f"{run_dir} holds an unfinished run with a different config ({', '.join(changed)}); "
                    f"resume with --config {run_dir / CONFIG_YAML}, or pass --overwrite"
                )
        if status == "trained":
            log.info("%s holds a trained model whose test evaluation did not finish; evaluating it", run_dir)
        else:
            log.info("resuming the unfinished run in %s", run_dir)
        return RunDirPlan(resuming=True, trained=status == "trained")
    if has_files:
        raise ConfigError(f"{run_dir} is not empty and is not a run folder; choose another --run-dir")
    if resume:
        raise ConfigError(f"--resume: {run_dir} holds no unfinished run")
    return RunDirPlan()


def write_run_dir(run_dir: Path, *, replacing: bool) -> None:
    """Make ``run_dir`` ready to write: the old run deleted when ``replacing``, the folder created."""
    what = f"the run folder {run_dir}"
    if replacing:
        try:
            shutil.rmtree(run_dir)
        except OSError as error:
            raise SinkError(f"cannot write {what}: {error.strerror or error}") from None
    make_folder(run_dir, what)


def get_strategy(name: str, logical_devices: int = 0):
    """The tf.distribute strategy for ``cfg.strategy``; see ``trainer.distribute.create_strategy``."""
    from trainer.distribute import create_strategy

    return create_strategy(name, logical_devices)


def make_optimizer(cfg: TrainConfig):
    import keras

    optim = cfg.optim
    averaging = {"use_ema": True, "ema_momentum": optim.ema_momentum} if optim.ema_momentum else {}
    if optim.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=optim.learning_rate, weight_decay=optim.weight_decay,
                                      **averaging)
    if optim.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=optim.learning_rate, momentum=optim.momentum,
                                    nesterov=optim.momentum > 0, weight_decay=optim.weight_decay or None,
                                    **averaging)
    return keras.optimizers.Adam(learning_rate=optim.learning_rate, **averaging)


def compile_model(model, cfg: TrainConfig):
    """The seed's compile: Adam (or AdamW, SGD), CategoricalCrossentropy, accuracy and top-3 accuracy."""
    import keras

    model.compile(
        optimizer=make_optimizer(cfg),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.optim.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy"),
        ],
    )
    return model


def build_and_compile(cfg: TrainConfig, pretrained: Path | None = None, *, fine_tune: bool = True):
    """Build (or load) and compile the model; call inside ``strategy.scope()``.

    ``pretrained`` to fine-tune goes into the config's network (``fine_tune``);
    one only to evaluate (``fine_tune=False``) stays as saved, in float32.
    """
    from trainer.evaluate import load_checked_model
    from trainer.models import build_model

    if pretrained is not None:
        model = load_checked_model(pretrained, cfg)
        if fine_tune:
            model = _as_config_network(model, cfg, pretrained)
    else:
        model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    if cfg.optim.freeze_norms and (fine_tune or pretrained is None):
        freeze_norms(model)
    return compile_model(model, cfg)


def freeze_norms(model) -> int:
    """Put every BatchNormalization layer in inference mode for training; returns how many.

    Keras runs a non-trainable BatchNormalization with its moving statistics
    even under ``training=True`` and leaves them, its scale and its offset as they are.
    """
    from trainer.norms import batch_norms

    norms = batch_norms(model)
    for layer in norms:
        layer.trainable = False
    log.info("optim.freeze_norms: %d BatchNormalization layers fixed in inference mode", len(norms))
    return len(norms)


def _as_config_network(loaded, cfg: TrainConfig, pretrained: Path):
    """The config's network, built in the config's precision, holding ``loaded``'s weights.

    So a fine-tune follows the config, not the file: saved models are float32
    throughout and their layers keep that dtype when loaded (a fine-tune would
    run in float32 whatever ``precision`` says), and settings that hold no
    weights (dropout rates) come from the config. When the config's network has
    fewer layers than the file's (``model.first_block_convs: 1`` on a two-conv
    model), each of its layers takes the weights of the file's layer of the same
    name, and the file's other layers are dropped: that prunes a trained model.
    A convolution the config splits (``model.conv_ranks``) takes the truncated
    SVD of the file's convolution of that name (``trainer.lowrank``). A model
    whose layers do not all match is fine-tuned as it was saved.
    """
    from trainer.models import build_model

    def shapes(holder) -> list[tuple[int, ...]]:
        return [tuple(w.shape) for w in holder.weights]

    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    if shapes(model) == shapes(loaded):
        model.set_weights(loaded.get_weights())
        return model
    saved = {layer.name: layer for layer in loaded.layers}
    split: dict[str, tuple] = {}  # a saved convolution's name -> its two halves (trainer.lowrank)

    def weights_for(layer) -> list | None:
        if layer.name in saved and shapes(layer) == shapes(saved[layer.name]):
            return saved[layer.name].get_weights()
        for half, suffix in enumerate(("_conv_reduce", "_conv_expand")):
            full = saved.get(layer.name.removesuffix(suffix) + "_conv") if layer.name.endswith(suffix) else None
            if full is not None and len(full.weights) == 1:
                rank = layer.kernel.shape[-1] if half == 0 else layer.kernel.shape[2]
                if full.name not in split:
                    split[full.name] = factorize_kernel(full.get_weights()[0], rank)
                if tuple(split[full.name][half].shape) == tuple(layer.kernel.shape):
                    return [split[full.name][half]]
        return None

    weighted = [layer for layer in model.layers if layer.weights]
    found = {layer.name: weights_for(layer) for layer in weighted}
    if any(weights is None for weights in found.values()):
        log.warning("%s is not the config's %r network; it is fine-tuned as it was saved (in float32, "
                    "with its own settings)", pretrained, cfg.model.name)
        return loaded
    for layer in weighted:
        layer.set_weights(found[layer.name])
    kept = set(found) | set(split)
    dropped = [layer.name for layer in loaded.layers if layer.weights and layer.name not in kept]
    log.info("%s: the config's network keeps its layers by name, splits %s by SVD and drops %s", pretrained,
             ", ".join(split) or "nothing", ", ".join(dropped) or "nothing")
    return model


def with_run_dir(cfg: TrainConfig) -> TrainConfig:
    return cfg if cfg.run_dir is not None else replace(cfg, run_dir=Path("runs") / cfg.model.name)


def train(
    cfg: TrainConfig,
    *,
    resume: bool | None = None,
    overwrite: bool = False,
    pretrained: Path | None = None,
    no_train: bool = False,
    extra_callbacks: Iterable[Any] = (),
) -> TrainResult:
    """Train ``cfg`` into its run folder and evaluate on the test split.

    ``no_train`` (the seed's ``train_again=False``) loads ``pretrained`` and
    only evaluates it. ``resume`` None resumes an unfinished run when there is
    one; True requires one; False refuses one.
    """
    import keras

    from trainer import distribute
    from trainer.callbacks import CHECKPOINT, HISTORY_CSV, backup_epoch, default_callbacks, read_history
    from trainer.data import load_datasets
    from trainer.evaluate import evaluate_model, load_model
    from trainer.models import custom_objects
    from trainer.precision import float32_copy, precision_policy

    if no_train and pretrained is None:
        raise ConfigError("--no-train needs --pretrained PATH (the model to evaluate)")
    cfg = with_run_dir(cfg)
    task = distribute.cluster_task(cfg.strategy, cfg.logical_devices)  # checks TF_CONFIG
    run_dir = distribute.worker_temp_dir(Path(cfg.run_dir), task)  # where this process writes
    started = time.time()
    resumed, replacing, trained = prepare_run_dir(cfg, resume=resume, overwrite=overwrite, run_dir=run_dir)
    if no_train and resumed:
        raise ConfigError(f"{run_dir} holds an unfinished training run; --no-train evaluates --pretrained into a "
                          "folder of its own: choose another --run-dir")
    if replacing and pretrained is not None and run_dir.resolve() in Path(pretrained).resolve().parents:
        raise ConfigError(f"--pretrained {pretrained} is inside {run_dir}, which --overwrite deletes; "
                          "copy the model out of it first, or choose another --run-dir")
    # Before any other TensorFlow op: MultiWorkerMirroredStrategy configures the runtime, and CPU
    # devices can only be split before it starts.
    strategy = distribute.create_strategy(cfg.strategy, cfg.logical_devices)
    keras.utils.set_random_seed(cfg.seed)
    # The validation pass: every file is checked before the run folder is written to. The pipelines
    # are built outside strategy.scope() (their random layers must stay plain variables); fit()
    # splits each global batch between the replicas.
    fit_batch_size = distribute.global_batch_size(cfg.data.batch_size, strategy)
    datasets = load_datasets(cfg, ("test",) if no_train else ("train", "val", "test"),
                             fit_batch_size=fit_batch_size)
    if cfg.strategy == "multiworker" and not no_train:
        datasets = replace(datasets, train=distribute.shard_by_data(datasets.train),
                           val=distribute.shard_by_data(datasets.val),
                           calibration=distribute.shard_by_data(datasets.calibration))
    log.info("images: %s", ", ".join(f"{k} {v}" for k, v in datasets.sizes.items()))
    if strategy.num_replicas_in_sync > 1:
        log.info("%d replicas in sync: global batch %d (data.batch_size %d per replica)",
                 strategy.num_replicas_in_sync, fit_batch_size, cfg.data.batch_size)
    if trained:  # only its evaluation is left to do
        model = load_model(run_dir / MODEL_KERAS)
    else:
        with strategy.scope(), precision_policy(cfg.precision):
            model = build_and_compile(cfg, pretrained, fine_tune=not no_train)
    write_run_dir(run_dir, replacing=replacing)  # data and model loaded: only now is an old run replaced
    if not trained:  # a trained run keeps the config it was trained with
        cfg.save(run_dir / CONFIG_YAML)
        _write_status(run_dir, "running")
    history_csv = run_dir / HISTORY_CSV
    if not no_train and not trained:
        if resumed:
            log.info("resuming at epoch %d of %d", (backup_epoch(run_dir) or 0) + 1, cfg.epochs)
        callbacks = default_callbacks(run_dir, cfg, datasets.calibration)
        # User callbacks run before the backup callback, so a failure they raise leaves the backup intact.
        callbacks[-1:-1] = list(extra_callbacks)
        with distribute.report_lost_workers(cfg.strategy, run_dir):
            model.fit(datasets.train, validation_data=datasets.val, epochs=cfg.epochs,
                      callbacks=callbacks, verbose=cfg.verbose, shuffle=False)
        model = float32_copy(model, custom_objects())  # what is saved, exported and evaluated
        model.save(run_dir / MODEL_KERAS)
        model.save(run_dir / MODEL_H5, include_optimizer=False)
        if cfg.precision != "float32" and (run_dir / CHECKPOINT).is_file():
            load_model(run_dir / CHECKPOINT).save(run_dir / CHECKPOINT)  # loaded in float32
        _write_status(run_dir, "trained")  # a rerun now evaluates this model instead of training another
    history = read_history(history_csv)
    metrics: dict[str, Any] = {}
    if task.is_chief:  # the other workers of a multiworker run leave the evaluation to the chief
        if cfg.strategy == "multiworker":  # a local copy predicts the whole test split, without collectives
            model = load_model(Path(pretrained) if no_train else run_dir / MODEL_KERAS)
        report = evaluate_model(model, datasets.test, cfg.data.class_names, run_dir,
                                history_csv=history_csv if history_csv.is_file() else None, split="test",
                                extra={"model": str(pretrained) if no_train else str(run_dir / MODEL_KERAS)})
        metrics = report.metrics
    if cfg.strategy == "multiworker":
        distribute.wait_for_all_tasks(strategy)  # the workers wait for the chief's evaluation
    _write_status(run_dir, "evaluated" if no_train else "finished")
    if not task.is_chief:
        shutil.rmtree(run_dir)
    return TrainResult(
        run_dir=Path(cfg.run_dir),
        model_path=Path(pretrained) if no_train else Path(cfg.run_dir) / MODEL_KERAS,
        history=history,
        metrics=metrics,
        resumed=resumed,
        epochs_completed=len(history.get("epoch", [])),
        seconds=time.time() - started,
        chief=task.is_chief,
    )


__all__ = ["TrainResult", "train", "build_and_compile", "compile_model", "get_strategy", "ErsError"]
