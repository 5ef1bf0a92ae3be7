"""tf.distribute: TF_CONFIG checks, and real mirrored / two-worker runs on 127.0.0.1.

The slow tests start ``ers train`` (``python -m edge.cli``) in subprocesses:
MultiWorkerMirroredStrategy and split CPU devices both need a process whose
TensorFlow runtime has not started yet.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_SETS, make_class_folders, tiny_overrides
from edge.cli import cli
from edge.errors import ConfigError
from trainer.config import resolve_config
from trainer.distribute import ClusterTask, cluster_task, read_tf_config, worker_temp_dir

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240  # per pair of processes; a run takes ~10-40 s here, more while other jobs load the CPU
CLUSTER = {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]}


def tf_config(cluster: dict, task_type: str = "worker", index: int = 0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


# ----------------------------------------------------------------- TF_CONFIG
@pytest.mark.parametrize("value,match", [
    (None, "it is not set"),
    ("", "it is not set"),
    ("{cluster: 1}", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "no 'cluster' key"),
    (json.dumps({"cluster": CLUSTER}), "no 'task' key"),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}), "non-empty list"),
    (json.dumps({"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}), "non-empty list"),
    (tf_config({"worker": ["127.0.0.1"]}), r"cluster.worker\[0\] must be a 'host:port'"),
    (tf_config({"worker": ["127.0.0.1:99999"]}), "port in 1..65535"),
    (tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:1"]}), "its own host:port"),
    (tf_config({"ps": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}), r"\['ps'\] are not supported"),
    (tf_config({"chief": ["127.0.0.1:1", "127.0.0.1:2"]}, "chief"), "at most one chief"),
    (tf_config(CLUSTER, "chief"), r"task.type must be one of the cluster's jobs \['worker'\]; got 'chief'"),
    (tf_config(CLUSTER, "worker", 2), r"task.index must be in 0..1 .*got 2"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker"}}), "task.index must be .* got None"),
    (json.dumps({"cluster": CLUSTER, "task": "worker"}), "'task' must be an object"),
])
def test_bad_tf_config_names_the_variable_and_the_problem(value, match):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ConfigError, match=match) as error:
        read_tf_config(environ)
    assert "TF_CONFIG" in str(error.value) and "docs/distributed.md" in str(error.value)


@pytest.mark.parametrize("cluster,task_type,index,chief", [
    (CLUSTER, "worker", 0, True),  # no chief job: worker 0 is the chief
    (CLUSTER, "worker", 1, False),
    ({"chief": ["h0:1"], "worker": ["h1:1"]}, "chief", 0, True),
    ({"chief": ["h0:1"], "worker": ["h1:1"]}, "worker", 0, False),
])
def test_the_chief_is_the_chief_task_or_worker_0(cluster, task_type, index, chief):
    task = read_tf_config({"TF_CONFIG": tf_config(cluster, task_type, index)})
    assert task.is_chief is chief
    assert task.num_workers == sum(len(addresses) for addresses in cluster.values())


def test_only_the_chief_writes_the_run_folder(tmp_path: Path):
    run_dir = tmp_path / "runs" / "lenet"
    assert worker_temp_dir(run_dir, ClusterTask.local()) == run_dir
    worker = read_tf_config({"TF_CONFIG": tf_config(CLUSTER, "worker", 1)})
    assert worker_temp_dir(run_dir, worker) == tmp_path / "runs" / "lenet.workertemp_1"


def test_a_workers_summary_points_to_the_chief(tmp_path: Path):
    from trainer.train import TrainResult

    result = TrainResult(run_dir=tmp_path, model_path=tmp_path / "model.keras", history={}, metrics={},
                         resumed=False, epochs_completed=1, seconds=1.0, chief=False)
    assert "written by the chief" in result.summary() and "test: evaluated by the chief" in result.summary()


def test_logical_devices_are_for_mirrored_only():
    with pytest.raises(ConfigError, match=r"logical_devices \(2\) .* 'mirrored' only; got strategy 'default'"):
        cluster_task("default", 2)
    assert cluster_task("mirrored", 2).is_chief
    with pytest.raises(ConfigError, match="logical_devices must be >= 0"):
        resolve_config(None, ["logical_devices=-1"])


def test_devices_and_the_cluster_are_set_before_tensorflow_starts(monkeypatch):
    import tensorflow as tf

    from trainer.distribute import create_strategy

    tf.constant(1.0) + 1.0  # TensorFlow has started in this (pytest) process
    with pytest.raises(ConfigError, match="logical_devices=3: TensorFlow already started"):
        create_strategy("mirrored", logical_devices=3)
    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": ["127.0.0.1:20001"]}))
    with pytest.raises(ConfigError, match="'multiworker' must be created before TensorFlow runs anything"):
        create_strategy("multiworker")


def test_a_lost_worker_is_a_one_line_error_under_multiworker_only(tmp_path: Path):
    import tensorflow as tf

    from trainer.distribute import WorkerLostError, report_lost_workers

    lost = tf.errors.UnavailableError(None, None, "The following tasks are unhealthy")
    with pytest.raises(WorkerLostError, match=r"start every worker again .* resumes from its backup in .*run.backup"):
        with report_lost_workers("multiworker", tmp_path / "run"):
            raise lost
    with pytest.raises(tf.errors.UnavailableError):
        with report_lost_workers("default", tmp_path / "run"):
            raise lost


def test_multiworker_without_tf_config_is_a_one_line_error(tmp_path: Path, class_folders: Path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, run_dir), "--strategy", "multiworker"])
    assert result.exit_code == 1
    assert "TF_CONFIG environment variable" in result.output and "not set" in result.output
    assert "Traceback" not in result.output and not run_dir.exists()


def test_multiworker_with_malformed_tf_config_is_a_one_line_error(tmp_path: Path, class_folders: Path,
                                                                  monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}')
    result = CliRunner().invoke(cli, ["train", *tiny_overrides(class_folders, tmp_path / "run"),
                                      "--strategy", "multiworker"])
    assert result.exit_code == 1 and "TF_CONFIG" in result.output and "task.index must be in 0..0" in result.output


def test_train_help_lists_strategies():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    assert "--strategy" in result.output and "multiworker" in result.output and "--logical-devices" in result.output


# ----------------------------------------------------------------- real runs
def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def process_env(tf_config_value: str | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    if tf_config_value is not None:
        env["TF_CONFIG"] = tf_config_value
    return env


def run_together(commands: list[list[str]], envs: list[dict[str, str]]) -> list[tuple[int, str]]:
    """Start every command at once; wait (bounded) for all; [(exit code, output)]."""
    processes = [subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for command, env in zip(commands, envs)]
    results = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT_S)
            results.append((process.returncode, output))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        outputs = [process.communicate()[0][-3000:] for process in processes]
        pytest.fail(f"distributed run did not finish in {TIMEOUT_S} s:\n" + "\n-----\n".join(outputs))
    return results


def ers_train(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "train", *args]


def history_epochs(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def run_files(run_dir: Path) -> set[str]:
    """Files and folders of a run, with TensorBoard event files named by kind only."""
    names = set()
    for path in run_dir.rglob("*"):
        relative = path.relative_to(run_dir)
        if "tfevents" in path.name:
            relative = relative.parent / "events.out.tfevents"
        names.add(str(relative))
    return names


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_class_folders(tmp_path_factory.mktemp("distribute") / "data")


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_gives_the_default_artifacts(tmp_path: Path, data_dir: Path):
    default_dir, mirrored_dir = tmp_path / "default", tmp_path / "mirrored"
    args = [*tiny_overrides(data_dir, default_dir), "--batch-size", "4"]
    result = CliRunner().invoke(cli, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [(code, output)] = run_together(
        [ers_train([*tiny_overrides(data_dir, mirrored_dir), "--batch-size", "4",
                    "--strategy", "mirrored", "--logical-devices", "2"])], [process_env()])
    assert code == 0, output
    assert "mirrored over 2 device(s)" in output and "global batch 8 (data.batch_size 4 per replica)" in output
    assert run_files(mirrored_dir) == run_files(default_dir)
    default_metrics = json.loads((default_dir / "metrics.json").read_text())
    mirrored_metrics = json.loads((mirrored_dir / "metrics.json").read_text())
    assert mirrored_metrics.keys() == default_metrics.keys()
    assert mirrored_metrics["num_samples"] == default_metrics["num_samples"] == 16
    assert history_epochs(mirrored_dir) == [0]
    assert "strategy: mirrored" in (mirrored_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_two_workers_on_loopback_train_one_model_on_the_chief(tmp_path: Path, data_dir: Path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    chief_dir, worker_dir = tmp_path / "chief" / "run", tmp_path / "worker" / "run"  # as on two machines
    common = ["--batch-size", "4", "--strategy", "multiworker", "--set", "cutmix.enabled=true"]
    results = run_together(
        [ers_train([*tiny_overrides(data_dir, chief_dir), *common]),
         ers_train([*tiny_overrides(data_dir, worker_dir), *common])],
        [process_env(tf_config(cluster, "worker", 0)), process_env(tf_config(cluster, "worker", 1))])
    for code, output in results:
        assert code == 0, output
    assert "global batch 8 (data.batch_size 4 per replica)" in results[0][1]
    assert "test: evaluated by the chief" in results[1][1] and "(on the chief)" in results[1][1]
    for name in ("model.keras", "model.h5", "checkpoint.keras", "metrics.json", "history.csv", "config.yaml"):
        assert (chief_dir / name).is_file(), name
    assert history_epochs(chief_dir) == [0]
    assert json.loads((chief_dir / "run.json").read_text())["status"] == "finished"
    metrics = json.loads((chief_dir / "metrics.json").read_text())
    assert metrics["num_samples"] == 16  # the whole test split, evaluated once
    assert not worker_dir.exists() and not worker_dir.with_name("run.workertemp_1").exists()
    assert sorted(p.name for p in chief_dir.parent.iterdir()) == ["run"]


# Trains like `ers train`, records the epochs and steps it runs, and can die like a killed worker.
RUNNER = """
import json, os, sys
import keras
from trainer.config import resolve_config
from trainer.train import train

args = json.loads(sys.argv[1])

class Probe(keras.callbacks.Callback):
    def write(self, line):
        with open(args["record"], "a") as handle:
            handle.write(line + "\\n")

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == args["exit_at_epoch"]:
            self.write(f"killed at {epoch}")
            os._exit(17)
        self.steps = 0
        self.write(f"begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self.write(f"end {epoch} steps {self.steps}")

cfg = resolve_config(None, args["overrides"])
print(train(cfg, extra_callbacks=[Probe()]).summary(), flush=True)
"""


@pytest.mark.slow
def test_killed_workers_resume_where_they_stopped(tmp_path: Path, data_dir: Path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    run_dir = tmp_path / "run"  # one file system: the worker writes run.workertemp_1 beside it
    overrides = [*TINY_SETS, f"data.data_dir={data_dir}", f"run_dir={run_dir}", "epochs=3", "data.batch_size=4",
                 "strategy=multiworker", "early_stopping_patience=0", "augment.enabled=false"]
    envs = [process_env(tf_config(cluster, "worker", index)) for index in (0, 1)]
    records = [tmp_path / "chief.txt", tmp_path / "worker.txt"]

    def start_both(exit_at_epoch):
        return run_together([[sys.executable, "-c", RUNNER, json.dumps(
            {"overrides": overrides, "record": str(record), "exit_at_epoch": exit_at_epoch})]
            for record in records], envs)

    for code, output in start_both(exit_at_epoch=1):  # both die as epoch 1 starts
        assert code == 17, output
    assert history_epochs(run_dir) == [0]
    assert (run_dir / "backup").is_dir() and (tmp_path / "run.workertemp_1" / "backup").is_dir()

    for code, output in start_both(exit_at_epoch=None):  # the same command again, same TF_CONFIG
        assert code == 0, output
        assert "(resumed)" in output
    for record in records:
        assert record.read_text().split("\n")[:-1] == [
            "begin 0", "end 0 steps 2", "killed at 1",  # 16 images, global batch 8: 2 steps a worker
            "begin 1", "end 1 steps 2", "begin 2", "end 2 steps 2",  # resumed at epoch 1, not 0
        ]
    assert history_epochs(run_dir) == [0, 1, 2]
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()
    assert not (tmp_path / "run.workertemp_1").exists()
