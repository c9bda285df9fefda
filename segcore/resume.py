"""Interrupted runs resume exactly: kill the process at any moment, rerun the same
command, get the weights of the uninterrupted run.

What is saved (`backup/state.zip`, one file, written to a temporary name then
renamed over the previous backup, so a kill while writing leaves the previous one):
every variable of the training state, in four groups: the task's variables (the
network's weights and the dropout layers' `SeedGenerator` states), the optimizer's
(its slots and the iteration count, which also drives the learning-rate schedule and
the augmentation seed, `segcore.task`), and the compiled metrics' (the loss mean and
the confusion matrix accumulated so far in the epoch), with the position
(epoch, step within the epoch) and the record of the finished epochs (the Keras
history). Each array's CRC-32 is checked when it is read (zip members): a corrupt or
truncated backup is an error naming the file, never loaded.

Why not `keras.callbacks.BackupAndRestore` (Keras 3.15): it saves the model's
weights and optimizer, but not the dropout seed generators nor the metric state,
and although it can save every N batches it records the batch and restores only
the epoch: a run killed mid-epoch restarts that epoch from its first batch with the
mid-epoch weights. Its backup is written in place (h5 + json, two files), so a
kill while writing can leave a half-written pair.

Where the draws come from on resume: the data order is a function of (seed, pass)
(`segcore.data.pipeline.make_training_stream`, which also skips the batches the
epoch already trained on); augmentation and elastic deformation are stateless
functions of (seed, optimizer iterations, replica); dropout draws from its layers'
seed generators, whose state is in the backup.

A resumed epoch is run by a first `fit` over the remaining steps of that epoch
(the metric state of its first part restored after fit resets the metrics), then a
second `fit` over the remaining epochs: the callbacks see epoch numbers as usual.
The run's record (history -> metrics.json and curves.png, train_log.csv) is
the backup's history plus the epochs run since; train_log.csv is rewritten from
it at each epoch end (so no epoch appears twice or is missing).

Test hook: env `SEGCORE_RESUME_TEST_BLOCK="MOMENT:STEP:MARKER"` makes the run write
the file MARKER and sleep at global step STEP (1-based), MOMENT being `step`
(after the step, no backup), `backup` (right after the backup of that step was
renamed into place) or `writing` (in the middle of writing that step's backup), so
that tests can kill the process at a known moment.
"""

import csv
import dataclasses
import errno
import io
import json
import logging
import os
import shutil
import tempfile
import time
import types
import zipfile

import keras
import numpy as np

from segcore.errors import ConfigError, DataError

log = logging.getLogger("segcore.resume")

FORMAT = 1
BACKUP_DIR = "backup"
BACKUP_FILE = "state.zip"
TRAIN_LOG = "train_log.csv"
# TrainConfig fields that do not change what is trained (a rerun may change them).
NOT_EXPERIMENT = ("name", "runs_dir", "verbose", "backup_every", "overwrite")
# --backup-every default: a backup when this much training time has passed since the
# last one (and at each epoch end).
AUTO_BACKUP_SECONDS = 600.0
TEST_BLOCK_ENV = "SEGCORE_RESUME_TEST_BLOCK"
GROUPS = ("task", "optimizer", "metrics")


# --- the run directory ------------------------------------------------------------

def experiment_fields(config):
    """{field: JSON value} of the TrainConfig fields that define the experiment."""
    document = json.loads(json.dumps(dataclasses.asdict(config), default=list))
    return {k: v for k, v in document.items() if k not in NOT_EXPERIMENT}


def config_differences(document, config):
    """Experiment fields whose value in a config.json `document` differs from `config`'s,
    as "field: old -> new" strings (a field missing from the document counts as its
    default)."""
    defaults = experiment_fields(type(config)())
    differences = []
    for field, value in experiment_fields(config).items():
        old = document.get(field, defaults.get(field))
        if old != value:
            differences.append(f"{field}: {json.dumps(old)} -> {json.dumps(value)}")
    return differences


def prepare_run_dir(run_dir, config):
    """Create `run_dir` (and checkpoints/) and check, before anything is trained, that it
    is writable and that an existing config.json there is this experiment's (else a
    ConfigError naming the differing fields, unless config.overwrite, which starts the
    run over: its backup and train_log.csv are removed)."""
    try:
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-check-"):
            pass
    except OSError as error:
        raise ConfigError(f"{run_dir}: run directory is not writable "
                          f"({error.strerror or error})") from None
    config_path = os.path.join(run_dir, "config.json")
    if os.path.exists(config_path):
        try:
            with open(config_path) as f:
                document = json.load(f)
        except (OSError, ValueError) as error:
            document = None
            if not getattr(config, "overwrite", False):
                raise ConfigError(f"{config_path}: not a readable config.json ({error}); "
                                  "pass --overwrite to start this run directory over") from None
        differences = [] if document is None else config_differences(document, config)
        if differences and not getattr(config, "overwrite", False):
            raise ConfigError(
                f"{config_path}: this run directory holds another experiment "
                f"({'; '.join(differences)}); use another --name or --runs-dir, or pass "
                "--overwrite to start it over")
    if getattr(config, "overwrite", False):
        shutil.rmtree(os.path.join(run_dir, BACKUP_DIR), ignore_errors=True)
        for name in (TRAIN_LOG, "metrics.json"):
            if os.path.exists(os.path.join(run_dir, name)):
                os.remove(os.path.join(run_dir, name))


def check_free_space(path, needed_bytes, what):
    """DataError naming `path` when its file system has less than `needed_bytes` free."""
    free = shutil.disk_usage(path).free
    if free < needed_bytes:
        raise DataError(f"{path}: disk full: {free / 1e6:.0f} MB free, {what} needs "
                        f"{needed_bytes / 1e6:.0f} MB")


def _raise_write_error(error, path, previous):
    kept = f"; the previous backup {previous} is intact" if os.path.exists(previous) else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DataError(f"{path}: disk full while writing the backup{kept}") from None
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        raise DataError(f"{path}: cannot write the backup: {error.strerror}{kept}") from None
    raise DataError(f"{path}: cannot write the backup: {error}{kept}") from None


# --- the backup file --------------------------------------------------------------

def training_state(task):
    """{group: [variables]} of everything a resumed run must restore (order is stable:
    the same network, optimizer and metrics give the same lists)."""
    seen = set()

    def unique(variables):
        kept = []
        for v in variables:
            if id(v) not in seen:
                seen.add(id(v))
                kept.append(v)
        return kept

    return {"task": unique(task.variables),
            "optimizer": unique(task.optimizer.variables if task.optimizer else []),
            "metrics": unique(task.metrics_variables)}


def _signature(variables):
    return [[v.path, list(v.shape), str(v.dtype)] for v in variables]


def state_bytes(state):
    return sum(int(np.prod(v.shape)) * np.dtype(str(v.dtype)).itemsize
               for variables in state.values() for v in variables)


def _test_block(moment, step):
    """The test hook (module docstring): block at (moment, step) when asked to."""
    wanted = os.environ.get(TEST_BLOCK_ENV)
    if not wanted:
        return
    want_moment, want_step, marker = wanted.split(":", 2)
    if want_moment == moment and int(want_step) == step:
        with open(marker, "w") as f:
            f.write(f"{moment} {step}\n")
        while True:
            time.sleep(60)


def write_backup(path, state, meta, block_step=None):
    """Write `state` ({group: variables}) and `meta` (JSON) to `path` atomically: into
    `path`.partial, flushed to disk, then renamed over `path`; one variable is read
    to host memory at a time."""
    partial = path + ".partial"
    document = dict(meta, format=FORMAT,
                    signature={g: _signature(vs) for g, vs in state.items()})
    try:
        with open(partial, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                archive.writestr("meta.json", json.dumps(document))
                for group, variables in state.items():
                    for i, variable in enumerate(variables):
                        with archive.open(f"{group}/{i}.npy", "w", force_zip64=True) as member:
                            np.lib.format.write_array(member, np.asarray(variable.numpy()),
                                                      allow_pickle=False)
                        if block_step is not None and group == "task" and i == 0:
                            _test_block("writing", block_step)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
        _fsync_dir(os.path.dirname(path))
    except OSError as error:
        try:
            os.remove(partial)
        except OSError:
            pass
        _raise_write_error(error, path, path)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _corrupt(path, why):
    return DataError(f"{path}: corrupt or partial backup ({why}); delete it to start the run "
                     "over from its first step, or pass --overwrite")


def read_backup_meta(path):
    """The meta record of the backup at `path` (a DataError naming it if unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("meta.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise _corrupt(path, error) from None
    if meta.get("format") != FORMAT:
        raise _corrupt(path, f"format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def read_backup_arrays(path, meta, state, groups=GROUPS):
    """{group: [arrays]} of the backup at `path`, checked against `state`'s variables
    (count, shapes, dtypes) and against the members' CRC-32."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for group in groups:
                # Shapes and dtypes, in order: variable paths get suffixes (_1, ...) when
                # a network is built twice in one process, so they are not compared.
                expected = _signature(state[group])
                saved = meta["signature"].get(group, [])
                mismatch = next((f"{mine[0]} is {mine[1:]}, saved {theirs[0]} {theirs[1:]}"
                                 for mine, theirs in zip(expected, saved)
                                 if mine[1:] != theirs[1:]), None)
                if len(saved) != len(expected) or mismatch:
                    raise _corrupt(path, f"its {group} variables are not this run's: "
                                   + (mismatch or f"{len(saved)} saved, {len(expected)} here"))
                arrays[group] = []
                for i in range(len(expected)):
                    with archive.open(f"{group}/{i}.npy") as member:
                        data = member.read()  # the whole member: zipfile checks its CRC
                    arrays[group].append(_npy_array(data))
    except DataError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise _corrupt(path, error) from None
    return arrays


def _npy_array(data):
    """The array of .npy `data` (bytes), without the chunked copy of
    np.lib.format.read_array on a file object (slow for arrays of hundreds of MB)."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = header(stream)
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C")


def assign(variables, arrays):
    for variable, value in zip(variables, arrays):
        variable.assign(value)


# --- the run record ---------------------------------------------------------------

def write_train_log(path, history):
    """train_log.csv of `history` ({key: [value per epoch]}), as keras.callbacks.CSVLogger
    writes it (epoch, then the sorted keys), rewritten atomically."""
    keys = sorted(history)
    epochs = len(history[keys[0]]) if keys else 0
    partial = path + ".partial"
    with open(partial, "w", newline="") as f:
        if keys:
            writer = csv.writer(f)
            writer.writerow(["epoch"] + keys)
            for epoch in range(epochs):
                writer.writerow([epoch] + [history[k][epoch] for k in keys])
    os.replace(partial, path)


class ResumeCallback(keras.callbacks.Callback):
    """Backs up the training state (every `backup_every` steps, or every
    AUTO_BACKUP_SECONDS when None; at every epoch end) and keeps the run's history."""

    def __init__(self, run, position, history):
        super().__init__()
        self.run = run
        self.epoch, self.step = position          # where this process starts
        self.history = history
        self.restore_metrics = None               # arrays, for the resumed epoch
        self.last_backup = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.restore_metrics is not None:
            # fit() has just reset the metrics: put back the first part of the epoch's.
            assign(self.run.state["metrics"], self.restore_metrics)
            self.restore_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        run = self.run
        step = self.epoch * run.steps + self.step
        _test_block("step", step)
        if self.step >= run.steps:
            return  # the epoch-end backup follows its validation
        every = run.backup_every
        # Multi-worker: every worker must back up at the same steps (reading the metrics'
        # sync-on-read variables is a collective), so a clock cannot decide it there.
        timed = every is None and not run.synchronous
        due = (timed and time.time() - self.last_backup >= AUTO_BACKUP_SECONDS) or \
              (every and step % every == 0)
        if due:
            self.save(step)
            _test_block("backup", step)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch, self.step = epoch + 1, 0
        self.save(None)
        if self.run.writes:
            write_train_log(os.path.join(self.run.run_dir, TRAIN_LOG), self.history)

    def save(self, step):
        run = self.run
        if not run.writes:
            # A worker that does not write still reads the state as the chief does: under
            # MultiWorkerMirroredStrategy reading a metric's sync-on-read variable is an
            # all-reduce that every worker must join, in the same order.
            for variables in run.state.values():
                for variable in variables:
                    variable.numpy()
            return
        started = time.time()
        meta = {"epoch": self.epoch, "step": self.step, "steps_per_epoch": run.steps,
                "history": self.history,
                "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "experiment": experiment_fields(run.config)}
        write_backup(run.backup_path, run.state, meta, block_step=step)
        self.last_backup = time.time()
        log.info("backup at epoch %d, step %d/%d: %s (%.1f s)", self.epoch + 1, self.step,
                 run.steps, run.backup_path, self.last_backup - started)


class ResumableRun:
    """The training of one run directory, resumed from its backup if it has one.

    `writes` = False for a process that must not write (a multi-worker run's
    non-chief workers): it restores from the backup but writes neither backups nor
    train_log.csv. `synchronous` (multi-worker): backups only at step counts, never by
    the clock (default --backup-every: epoch ends only), so all workers back up alike.
    """

    def __init__(self, run_dir, config, steps, writes=True, synchronous=False):
        self.run_dir = run_dir
        self.config = config
        self.steps = steps
        self.writes = writes
        self.synchronous = synchronous
        self.backup_every = getattr(config, "backup_every", None)
        if self.backup_every is not None and self.backup_every < 0:
            raise ConfigError(f"--backup-every must be >= 0 steps (0: at epoch ends only), "
                              f"got {self.backup_every}")
        self.backup_dir = os.path.join(run_dir, BACKUP_DIR)
        self.backup_path = os.path.join(self.backup_dir, BACKUP_FILE)
        self.state = None
        self.resumed_epoch = None
        self.meta = None
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = self.backup_path + ".partial"
        if os.path.exists(partial) and writes:
            log.warning("removing %s: a backup whose writing was interrupted (the previous "
                        "backup, if any, is intact)", partial)
            os.remove(partial)
        if os.path.exists(self.backup_path):
            self.meta = read_backup_meta(self.backup_path)
            if self.meta.get("steps_per_epoch") != steps:
                raise _corrupt(self.backup_path, f"written for {self.meta.get('steps_per_epoch')}"
                               f" steps per epoch, this run has {steps}")

    @property
    def position(self):
        return (self.meta["epoch"], self.meta["step"]) if self.meta else (0, 0)

    def fit(self, task, make_stream, validation_data, callbacks=(), validation_steps=None,
            verbose="auto"):
        """Train `task` to config.epochs from the backup's position; `make_stream(first,
        count)` gives the training batches first .. first + count - 1 of the run.
        Returns a History-like object whose `history` covers every epoch."""
        epochs = self.config.epochs
        epoch, step = self.position
        history = {k: list(v) for k, v in (self.meta or {}).get("history", {}).items()}
        resume = ResumeCallback(self, (epoch, step), history)
        if self.meta:
            log.info("resuming %s from its backup %s (written %s): epoch %d of %d, step %d of "
                     "%d, %d epoch(s) already recorded", self.config.name, self.backup_path,
                     self.meta.get("written"), epoch + 1, epochs, step, self.steps,
                     len(next(iter(history.values()), [])))
            self.resumed_epoch = epoch
        if self.writes:
            write_train_log(os.path.join(self.run_dir, TRAIN_LOG), history)
        _build_compiled_metrics(task, make_stream(epoch * self.steps + step, 1).element_spec)
        restorer = _Restorer(self, resume)
        callbacks = [restorer, resume] + list(callbacks)
        common = dict(validation_data=validation_data, validation_steps=validation_steps,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
        if epoch >= epochs:
            restorer.restore_now(task)  # killed after training (in evaluation or export)
        if epoch < epochs and step:
            task.fit(make_stream(epoch * self.steps + step, self.steps - step),
                     epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=self.steps - step,
                     **common)
            epoch += 1
        if epoch < epochs:
            first = epoch * self.steps
            task.fit(make_stream(first, epochs * self.steps - first), epochs=epochs,
                     initial_epoch=epoch, steps_per_epoch=self.steps, **common)
        return types.SimpleNamespace(history=history)

    def finish(self):
        """The run's record is written: the backup is no longer needed."""
        if self.writes:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def _build_compiled_metrics(task, element_spec):
    """Create the compiled metrics' variables before fit: without a distribution strategy
    Keras 3.15 creates them only when it traces the first step, after on_train_begin,
    where the backup's metric state must be in the list (else a mid-epoch backup would
    miss the confusion matrix). Keras' own build on the batch's spec (no data is read)."""
    metrics = getattr(task, "_compile_metrics", None)
    if metrics is not None and not metrics.built:
        with task.distribute_strategy.scope():
            task._symbolic_build(data_batch=element_spec)


class _Restorer(keras.callbacks.Callback):
    """At the first fit's train begin (the model, optimizer and metrics are built by
    then): check the disk has room for a backup, and restore the backup's state."""

    def __init__(self, run, resume):
        super().__init__()
        self.run = run
        self.resume = resume
        self.done = False

    def on_train_begin(self, logs=None):
        if not self.done:
            self.restore_now(self.model)

    def restore_now(self, task):
        self.done = True
        run = self.run
        if task.optimizer is not None and not task.optimizer.built:
            task.optimizer.build(task.trainable_variables)
        run.state = training_state(task)
        if run.writes:
            size = state_bytes(run.state)
            # A new backup is written next to the previous one before it replaces it;
            # the final weights need about the network's share again.
            check_free_space(run.backup_dir, size + state_bytes({"t": run.state["task"]}),
                             f"a backup of the training state ({size / 1e6:.0f} MB)")
        if run.meta is None:
            return
        groups = ("task", "optimizer") if self.resume.step == 0 else GROUPS
        if run.meta["epoch"] >= run.config.epochs:
            groups = ("task",)
        arrays = read_backup_arrays(run.backup_path, run.meta, run.state, groups)
        assign(run.state["task"], arrays["task"])
        if "optimizer" in arrays:
            assign(run.state["optimizer"], arrays["optimizer"])
        if "metrics" in arrays:
            self.resume.restore_metrics = arrays["metrics"]
