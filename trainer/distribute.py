"""tf.distribute for ``ers train``: ``default``, ``mirrored`` (local devices), ``multiworker`` (TF_CONFIG).

* ``default``: ``tf.distribute.get_strategy()``; one device, nothing changes.
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local GPU (those
  ``CUDA_VISIBLE_DEVICES`` leaves visible); with no GPU, over the CPU. With
  ``logical_devices: N`` the CPU is first split into N logical devices and the
  strategy mirrors over those (a way to run mirrored training on a CPU-only
  machine, e.g. in tests).
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``; the cluster
  and this process's task come from the ``TF_CONFIG`` environment variable
  (``read_tf_config`` checks it before anything is written).

``data.batch_size`` is the batch of ONE replica: the pipelines of ``fit`` are
batched with ``batch_size * num_replicas_in_sync`` (``global_batch_size``) and
the strategy splits every global batch between the replicas. Under
``multiworker`` the train and validation sets are sharded by data
(``AutoShardPolicy.DATA``): every worker builds the same seeded pipeline and
keeps its share of the elements.

Only the chief writes the run folder. A non-chief worker writes its run
(backups, logs, its copy of the model) into ``worker_temp_dir`` beside it,
which is deleted when the run finishes, as in TensorFlow's multi-worker Keras
tutorial; its ``backup/`` lets a restarted worker resume with the chief. At
the end the chief alone evaluates the test split (with a local copy of the
model); the others wait for it at a last all-reduce (``wait_for_all_tasks``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from edge.errors import ConfigError, ErsError

log = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")
DOCS = "docs/distributed.md"
EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
           '"task": {"type": "worker", "index": 0}}')


class WorkerLostError(ErsError, RuntimeError):
    """Another task of a multiworker cluster stopped or cannot be reached during training."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster: its task and the number of training workers."""

    task_type: str
    task_index: int
    num_workers: int
    chief: tuple[str, int] = ("chief", 0)  # the "chief" task, or ("worker", 0) when there is none
    chief_address: str = "localhost"

    @property
    def is_chief(self) -> bool:
        return (self.task_type, self.task_index) == self.chief

    @classmethod
    def local(cls) -> ClusterTask:
        return cls("chief", 0, 1)


def _tf_config_error(problem: str) -> ConfigError:
    return ConfigError(f"strategy 'multiworker' reads the cluster from the {TF_CONFIG} environment variable: "
                       f"{problem}. Example: {TF_CONFIG}='{EXAMPLE}' (see {DOCS})")


def _check_address(job: str, index: int, address: Any) -> str:
    if not isinstance(address, str) or ":" not in address:
        raise _tf_config_error(f"cluster.{job}[{index}] must be a 'host:port' string; got {address!r}")
    host, port = address.rsplit(":", 1)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _tf_config_error(f"cluster.{job}[{index}] must be a 'host:port' string with a port "
                               f"in 1..65535; got {address!r}")
    return address


def read_tf_config(environ: Mapping[str, str] | None = None) -> ClusterTask:
    """Parse and check ``TF_CONFIG``; every problem is a ``ConfigError`` naming the variable."""
    environ = os.environ if environ is None else environ
    raw = environ.get(TF_CONFIG, "")
    if not raw.strip():
        raise _tf_config_error("it is not set; set it in every worker's environment to the cluster's "
                               "addresses and that worker's task")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise _tf_config_error(f"it is not valid JSON ({error}); got {raw!r}") from None
    if not isinstance(config, dict):
        raise _tf_config_error(f"it must be a JSON object with 'cluster' and 'task'; got {raw!r}")
    missing = [key for key in ("cluster", "task") if key not in config]
    if missing:
        raise _tf_config_error(f"it has no {' or '.join(repr(k) for k in missing)} key; got {raw!r}")
    cluster, task = config["cluster"], config["task"]
    if not isinstance(cluster, dict) or not cluster:
        raise _tf_config_error(f"'cluster' must map job names to lists of 'host:port'; got {cluster!r}")
    unknown = sorted(set(cluster) - set(TASK_TYPES))
    if unknown:
        raise _tf_config_error(f"cluster jobs {unknown} are not supported by MultiWorkerMirroredStrategy; "
                               f"use only {list(TASK_TYPES)}")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise _tf_config_error(f"cluster.{job} must be a non-empty list of 'host:port'; got {addresses!r}")
        for index, address in enumerate(addresses):
            _check_address(job, index, address)
    if len(cluster.get("chief", [])) > 1:
        raise _tf_config_error(f"a cluster has at most one chief; got cluster.chief {cluster['chief']!r}")
    all_addresses = [a for addresses in cluster.values() for a in addresses]
    if len(set(all_addresses)) != len(all_addresses):
        raise _tf_config_error(f"every task needs its own host:port; got {all_addresses}")
    if not isinstance(task, dict):
        raise _tf_config_error(f"'task' must be an object like {{\"type\": \"worker\", \"index\": 0}}; got {task!r}")
    task_type, task_index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise _tf_config_error(f"task.type must be one of the cluster's jobs {sorted(cluster)}; got {task_type!r}")
    if isinstance(task_index, bool) or not isinstance(task_index, int):
        raise _tf_config_error(f"task.index must be this task's position in cluster.{task_type} "
                               f"(an integer); got {task_index!r}")
    if not 0 <= task_index < len(cluster[task_type]):
        raise _tf_config_error(f"task.index must be in 0..{len(cluster[task_type]) - 1} for the "
                               f"{len(cluster[task_type])} {task_type} address(es); got {task_index}")
    chief = ("chief", 0) if "chief" in cluster else ("worker", 0)
    return ClusterTask(task_type, task_index, len(all_addresses), chief, cluster[chief[0]][0])


def cluster_task(strategy_name: str, logical_devices: int = 0,
                 environ: Mapping[str, str] | None = None) -> ClusterTask:
    """Check the strategy settings; this process's task (``TF_CONFIG`` for ``multiworker``).

    ``logical_devices`` is checked here rather than in ``TrainConfig`` so that a
    file and the command line may set it and ``strategy`` in either order.
    """
    if logical_devices > 0 and strategy_name != "mirrored":
        raise ConfigError(f"logical_devices ({logical_devices}) splits the CPU for strategy 'mirrored' only; "
                          f"got strategy {strategy_name!r}; pass --strategy mirrored or set logical_devices=0")
    return read_tf_config(environ) if strategy_name == "multiworker" else ClusterTask.local()


def worker_temp_dir(run_dir: Path, task: ClusterTask) -> Path:
    """Where this task writes: ``run_dir`` on the chief, ``<run_dir>.<type>temp_<index>`` elsewhere.

    The folder sits beside ``run_dir`` (not inside it), so a chief and a worker
    sharing a file system (one machine, or a network drive) never touch each
    other's files.
    """
    run_dir = Path(run_dir)
    if task.is_chief:
        return run_dir
    return run_dir.with_name(f"{run_dir.name}.{task.task_type}temp_{task.task_index}")


def split_cpu(num_devices: int) -> None:
    """Split the first CPU into ``num_devices`` logical devices (before TensorFlow starts)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        raise ConfigError(f"logical_devices={num_devices}: TensorFlow already started in this process with "
                          f"{have} CPU device(s), and devices can only be split before it starts; "
                          "run `ers train` in a new process") from None


def create_strategy(name: str, logical_devices: int = 0):
    """The ``tf.distribute.Strategy`` called ``name``; call it before any other TensorFlow op.

    ``MultiWorkerMirroredStrategy`` must be created before TensorFlow's runtime
    starts (it configures the runtime for the cluster), and logical devices can
    only be split before then too.
    """
    import tensorflow as tf

    if logical_devices > 0:
        split_cpu(logical_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if logical_devices > 0:
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            strategy = tf.distribute.MirroredStrategy()  # every visible GPU, else the CPU
        log.info("mirrored over %d device(s): %s", strategy.num_replicas_in_sync,
                 ", ".join(strategy.extended.worker_devices))
        return strategy
    if name == "multiworker":
        task = read_tf_config()  # a clear error before TensorFlow parses it
        try:
            strategy = _multi_worker_strategy()
        except RuntimeError as error:  # "Collective ops must be configured at program startup"
            raise ConfigError(f"strategy 'multiworker' must be created before TensorFlow runs anything in "
                              f"this process ({error}); run `ers train` (or train()) in a new process") from None
        log.info("multiworker: task %s %d of a %d-worker cluster (chief %s %d at %s), %d replica(s) in sync",
                 task.task_type, task.task_index, task.num_workers, *task.chief, task.chief_address,
                 strategy.num_replicas_in_sync)
        return strategy
    raise ConfigError(f"unknown strategy {name!r}")


def _multi_worker_strategy():
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` passes it.

    Keras 3 (keras-team/keras#20585) calls ``strategy.reduce`` under this
    strategy (a) on the whole first ``(images, labels)`` batch, to build the
    model, and (b) with ``axis=0`` on each step's per-replica scalar metrics.
    TensorFlow's strategy takes neither ("Attempt to convert a value
    (PerReplica...) to a Tensor"; "Invalid reduction dimension 0 for input
    with 0 dimensions"). This ``reduce`` reduces each tensor of a nest on its
    own, over the replicas only when a tensor is a scalar, which is what both
    calls mean; every other call is TensorFlow's own.
    """
    import tensorflow as tf

    class NestReduceMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            reduce_one = super().reduce

            def reduce_item(item):
                scalar = self.experimental_local_results(item)[0].shape.rank == 0
                return reduce_one(reduce_op, item, None if scalar else axis)

            return tf.nest.map_structure(reduce_item, value)

    return NestReduceMultiWorkerMirroredStrategy()


@contextlib.contextmanager
def report_lost_workers(strategy_name: str, run_dir: Path) -> Iterator[None]:
    """Under ``multiworker``, turn TensorFlow's error for a task that died into ``WorkerLostError``.

    When a task stops, the collective ops of the others fail (after the
    coordination service's heartbeat timeout) with ``UnavailableError`` or
    ``AbortedError``; every task then has to be started again.
    """
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if strategy_name != "multiworker":
            raise
        raise WorkerLostError(
            f"another task of the multiworker cluster stopped or cannot be reached ({type(error).__name__}); "
            f"start every worker again with the same command and {TF_CONFIG}: each resumes from its backup "
            f"in {Path(run_dir) / 'backup'} (use --debug for TensorFlow's message)") from error


def wait_for_all_tasks(strategy) -> None:
    """Block until every task of the cluster gets here: an all-reduce of one number.

    At the end of a multiworker run the chief evaluates while the other workers
    wait here, so no task leaves the cluster while another still works in it.
    """
    import tensorflow as tf

    @tf.function
    def all_reduce_one():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("sum", tf.constant(1.0)))

    all_reduce_one()


def global_batch_size(per_replica: int, strategy) -> int:
    """The batch ``fit`` sees: ``data.batch_size`` per replica times the replicas in sync."""
    return per_replica * strategy.num_replicas_in_sync


def shard_by_data(dataset):
    """``dataset`` with ``AutoShardPolicy.DATA``: each worker keeps its share of the elements."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


__all__ = ["ClusterTask", "TF_CONFIG", "WorkerLostError", "read_tf_config", "cluster_task", "worker_temp_dir",
           "split_cpu", "create_strategy", "report_lost_workers", "wait_for_all_tasks", "global_batch_size",
           "shard_by_data"]
