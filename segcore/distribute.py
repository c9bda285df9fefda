"""Training on several machines: `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`.

Every worker runs the same trainer command with its own ``TF_CONFIG`` (set by
`python -m segcore.launch` on one machine, by Kubernetes/Kubeflow, Slurm or Ray on
a cluster). When it names more than one worker, `cluster_from_env` returns a
`Cluster` and the engine:

* builds a `MultiWorkerMirroredStrategy` (`multi_worker_strategy`): collective
  all-reduce over gRPC, a bounded wait for the peers to join (SEGCORE_JOIN_TIMEOUT,
  default 300 s; then a one-line error naming the absent workers and the
  process ends) and a bounded
  collective timeout (SEGCORE_COLLECTIVE_TIMEOUT, default 600 s), so a worker that
  hangs can not stall the others forever; a worker that dies is detected at the
  next collective (connection refused) and `lost_worker_error` names it;
* lets only the chief write the run directory: the other workers write their
  required copies (checkpoints, backups: saving may run collectives, so every
  worker must save) into a temporary directory that is removed at the end, as
  the TensorFlow multi-worker guide prescribes (`worker_run_dir`, `remove_worker_dir`);
* every worker restores from the chief's backup (`segcore.resume.ResumableRun`
  reads the chief's run directory; only the chief writes it), so all restart from
  the same step (the run directory must be on a file system all workers see);
* shards the input by file when the dataset reads files through tf.data reader
  datasets (TFRecord, text lines, fixed-length records), by data otherwise
  (`shard_policy`): every worker then reads the same shuffled stream (the
  shuffle is seeded) and keeps its replicas' slices of each global batch.

`MultiWorkerFitMixin` works around keras-team/keras#20585 (Keras 3 `fit` under
MultiWorkerMirroredStrategy); `SegmentationTask` inherits it.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras
import tensorflow as tf

from segcore.errors import ConfigError, SegmentationError

log = logging.getLogger("segcore.distribute")

JOBS = ("chief", "worker")            # the jobs that train; "evaluator" is accepted and idle
JOIN_TIMEOUT = 300.0                  # seconds to wait for every worker at start-up
COLLECTIVE_TIMEOUT = 600.0            # seconds one all-reduce may wait for a peer
KERAS_VERSION = "3.15."               # the Keras the workaround was written for (see the test)
READER_OPS = ("TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
              "FixedLengthRecordDatasetV2", "TextLineDataset", "ArrayRecordDataset")


class WorkerLostError(SegmentationError):
    """A peer worker died or became unreachable during training."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The training tasks of TF_CONFIG and which one this process is."""

    tasks: tuple          # ((job, index, "host:port"), ...) in chief-first order
    task_type: str
    task_index: int

    @property
    def num_workers(self):
        return len(self.tasks)

    @property
    def rank(self):
        """0 for the chief, 1.. for the others (the order of `tasks`)."""
        return [(job, index) for job, index, _ in self.tasks].index(
            (self.task_type, self.task_index))

    @property
    def is_chief(self):
        # TF's rule: the "chief" task, or worker 0 when there is no chief job.
        return self.rank == 0

    def name(self, rank=None):
        job, index, address = self.tasks[self.rank if rank is None else rank]
        return f"{job} {index} ({address})"

    @property
    def chief(self):
        return self.name(0)


def _address_ok(address):
    host, _, port = str(address).rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def cluster_from_env(environ=None):
    """The `Cluster` of $TF_CONFIG, or None when it is unset or names one training
    task (then the run is single-host). Any inconsistency is a one-line ConfigError."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}): {text[:80]!r}") from None
    if not isinstance(document, dict) or not isinstance(document.get("cluster"), dict):
        raise ConfigError('TF_CONFIG must be a JSON object with a "cluster" object '
                          '(job name -> list of "host:port") and a "task" object')
    cluster, task = document["cluster"], document.get("task")
    unknown = sorted(set(cluster) - set(JOBS) - {"evaluator"})
    if unknown:
        raise ConfigError(f"TF_CONFIG cluster job(s) {', '.join(unknown)} not supported "
                          f"(MultiWorkerMirroredStrategy trains with {' and '.join(JOBS)} tasks)")
    tasks = []
    for job in JOBS:
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list):
            raise ConfigError(f'TF_CONFIG cluster "{job}" must be a list of "host:port", '
                              f"got {addresses!r}")
        for index, address in enumerate(addresses):
            if not _address_ok(address):
                raise ConfigError(
                    f'TF_CONFIG cluster "{job}"[{index}] = {address!r} is not "host:port"')
            tasks.append((job, index, address))
    if len(cluster.get("chief", [])) > 1:
        raise ConfigError(f'TF_CONFIG cluster "chief" has {len(cluster["chief"])} tasks; at most 1')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError('TF_CONFIG needs "task": {"type": "worker", "index": N}')
    task_type, task_index = task["type"], task["index"]
    if task_type not in cluster:
        raise ConfigError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster "
                          f"({', '.join(cluster)})")
    if not isinstance(task_index, int) or isinstance(task_index, bool) \
            or not 0 <= task_index < len(cluster[task_type]):
        raise ConfigError(f"TF_CONFIG task index {task_index!r} is out of range: the cluster has "
                          f"{len(cluster[task_type])} {task_type!r} task(s) "
                          f"(0..{len(cluster[task_type]) - 1})")
    if task_type == "evaluator":
        raise ConfigError("TF_CONFIG task type 'evaluator' (side-car evaluation) is not supported; "
                          "the chief evaluates at the end of training")
    if len(tasks) <= 1:
        return None
    return Cluster(tuple(tasks), task_type, task_index)


def _seconds(name, default):
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name}={text!r}: expected a positive number of seconds")
    return value


def multi_worker_strategy(cluster):
    """MultiWorkerMirroredStrategy for `cluster`, created within SEGCORE_JOIN_TIMEOUT.

    Creating the strategy starts this task's gRPC server and waits for every peer
    to connect, with no limit of its own; a watchdog turns a peer that never
    answers (wrong address, not started) into a one-line error on stderr and ends
    the process (SIGKILL: it is blocked in C++).
    """
    join_timeout = _seconds("SEGCORE_JOIN_TIMEOUT", JOIN_TIMEOUT)
    collective_timeout = _seconds("SEGCORE_COLLECTIVE_TIMEOUT", COLLECTIVE_TIMEOUT)
    others = ", ".join(cluster.name(rank) for rank in range(cluster.num_workers)
                       if rank != cluster.rank)

    message = (f"error: TF_CONFIG: {cluster.name()} waited {join_timeout:.0f} s for {others} "
               "to join (unreachable address, or not started?); set SEGCORE_JOIN_TIMEOUT "
               "to wait longer")
    # The constructor blocks in C++ holding the GIL (a Python timer thread never runs):
    # a watchdog process prints the error and ends this one unless told in time.
    watchdog = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG, str(os.getpid()),
                                 str(join_timeout), message], stdin=subprocess.PIPE)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=collective_timeout))
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ConfigError(f"TF_CONFIG: {cluster.name()} could not start: "
                          f"{str(error).strip().splitlines()[0]}") from None
    finally:
        watchdog.stdin.close()  # end of input: the watchdog exits quietly
        watchdog.wait()
    log.info("MultiWorkerMirroredStrategy: %d workers, %d replicas; this is %s%s; chief %s",
             cluster.num_workers, strategy.num_replicas_in_sync, cluster.name(),
             " (chief)" if cluster.is_chief else "", cluster.chief)
    return strategy


def is_multi_worker(strategy):
    """True for a MultiWorkerMirroredStrategy that spans more than one worker."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def describe(cluster, strategy):
    """The config.json record of the cluster (empty on one host)."""
    if cluster is None:
        return {"workers": 1}
    return {"strategy": "MultiWorkerMirroredStrategy", "workers": cluster.num_workers,
            "replicas": strategy.num_replicas_in_sync, "chief": cluster.chief,
            "cluster": [address for _, _, address in cluster.tasks]}


_WATCHDOG = """
import os, select, signal, sys
pid, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], timeout)[0]:
    sys.stderr.write(message + chr(10))
    sys.stderr.flush()
    os.kill(pid, signal.SIGKILL)
"""


# --- run directory: the chief writes it, the others a temporary copy --------------------

def writes_run_dir(cluster):
    return cluster is None or cluster.is_chief


def worker_run_dir(run_dir, cluster):
    """`run_dir` for the chief (and on one host); for the other workers a temporary
    directory for the copies they must save, named after the run so that a rerun
    replaces what a killed worker left (removed by `remove_worker_dir`)."""
    if writes_run_dir(cluster):
        return run_dir
    digest = hashlib.sha1(os.path.abspath(run_dir).encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(),
                        f"segcore-{cluster.task_type}{cluster.task_index}-{digest}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def remove_worker_dir(directory, cluster):
    if not writes_run_dir(cluster):
        shutil.rmtree(directory, ignore_errors=True)


def seed_augmentation(seed, cluster):
    """After the input pipelines are built: on the workers other than the chief,
    re-set TensorFlow's global seed to `seed + rank`, so that the on-device
    augmentation drawn in the training step differs between workers (the replicas
    of one worker already draw differently). Not before: the pipeline's shuffle
    takes its order from the global seed too, and every worker must shuffle alike
    for the data sharding to give each example to one replica per epoch; a pipeline
    built later is built inside `same_global_seed`. Initial weights are broadcast
    from the chief by the strategy."""
    if cluster is not None and cluster.rank:
        tf.random.set_seed(seed + cluster.rank)


@contextlib.contextmanager
def same_global_seed(seed, cluster):
    """Inside: TensorFlow's global seed is `seed` on every worker; after: each worker's
    own again (`seed_augmentation`). For input pipelines built after the workers' seeds
    diverged: a `Dataset.shuffle(seed=s)` orders by (global seed, s), and under data
    sharding every worker must order alike, or a global batch holds one example twice and
    another not at all. The chief (and a single process) is left as it is."""
    if cluster is None or not cluster.rank:
        yield
        return
    tf.random.set_seed(seed)
    try:
        yield
    finally:
        tf.random.set_seed(seed + cluster.rank)


# --- input sharding ----------------------------------------------------------------------

def shard_policy(dataset):
    """"file" when `dataset` reads files through tf.data reader datasets (each worker
    then reads only its share of the files), else "data" (each worker reads the
    whole stream and keeps its replicas' slices of every global batch).

    The segcore readers list image files and decode them in a `map`: no reader
    dataset, so they are sharded by data (decoding is cached after the first epoch)."""
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(tf.raw_ops.DatasetToGraphV2(
        input_dataset=dataset._variant_tensor, external_state_policy=0).numpy())
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return "file" if ops & set(READER_OPS) else "data"





# --- errors ---------------------------------------------------------------------------

_PEER = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")
_ADDRESS = re.compile(r"(?:ipv4:|ipv6:)?\[?([\w.\-:]+?)\]?:(\d+)\b")
LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
        tf.errors.CancelledError, tf.errors.InternalError, tf.errors.FailedPreconditionError)


def lost_worker_error(error, cluster):
    """A WorkerLostError naming the lost peer for a collective's failure, or None
    when `error` is not one (a data error, say)."""
    if cluster is None or not isinstance(error, LOST):
        return None
    message = getattr(error, "message", str(error))
    if not any(mark in message for mark in ("Collective ops is aborted", "failed to connect",
                                            "Connection refused", "Socket closed",
                                            "timed out", "heartbeat", "unavailable",
                                            "Deadline Exceeded")):
        return None
    lost = None
    addresses = {address: rank for rank, (_, _, address) in enumerate(cluster.tasks)}
    for host, port in _ADDRESS.findall(message):
        rank = addresses.get(f"{host}:{port}")
        if rank is not None and rank != cluster.rank:
            lost = rank
            break
    if lost is None:
        for job, index in _PEER.findall(message):
            ranks = [r for r, (j, i, _) in enumerate(cluster.tasks) if (j, i) == (job, int(index))]
            if ranks and ranks[0] != cluster.rank:
                lost = ranks[0]
                break
    who = cluster.name(lost) if lost is not None else "a peer worker"
    first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return WorkerLostError(
        f"{who} was lost during training ({type(error).__name__}: {first[:200]}); "
        f"{cluster.name()} stops. Rerun the same launch to resume from the last backed-up epoch")


# --- the Keras 3 workaround ---------------------------------------------------------------

def _local_batch(strategy, batch):
    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return keras.tree.map_structure(local, batch)


class MultiWorkerFitMixin:
    """`model.fit` under MultiWorkerMirroredStrategy for Keras 3.15 (TensorFlow backend).

    Waits for keras-team/keras#20585 (open). Keras 3.15.1's TensorFlowTrainer fails
    there twice; these overrides avoid both, and change nothing on one worker:

    1. `_maybe_symbolic_build` reduces the first distributed batch with
       `strategy.reduce("MEAN", batch, axis=None)`, which MultiWorkerMirroredStrategy
       rejects ("Attempt to convert a value (PerReplica...)"). It only needs the
       batch's structure and shapes: we give it this worker's first replica's batch.
    2. `reduce_per_replica` reduces every log under multi-worker with
       `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar logs
       ("Invalid reduction dimension 0 for input with 0 dimensions") and would
       reduce a vector log over its own first axis. The step returns each log with
       a leading axis of 1, so that axis-0 mean is the mean over replicas of the
       log itself (what the single-worker path computes).

    tests/test_multiworker.py checks that Keras still has both code paths (and fails
    when it changes, so that this is removed or updated).
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is None or not is_multi_worker(strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = _local_batch(strategy, next(batches))
            break
        return super()._maybe_symbolic_build(data_batch=data_batch)

    def _logs_for_multi_worker(self, logs):
        if not is_multi_worker(self.distribute_strategy):
            return logs
        return keras.tree.map_structure(lambda value: tf.expand_dims(value, 0), logs)

    def train_step(self, data):
        return self._logs_for_multi_worker(super().train_step(data))

    def test_step(self, data):
        return self._logs_for_multi_worker(super().test_step(data))
