"""The one training loop: `train_and_evaluate(config, family)`.

Every model family (FCN, U-Net, DeepLab) trains through this function:

1. resolve the configuration and write it to ``runs/<name>/config.json``;
2. read the dataset (`segcore.data.load`) and build the tf.data pipelines;
3. inside `tf.distribute.MirroredStrategy` (all local GPUs, or one CPU device,
   or the devices named in the config) build the network (`family.build`),
   wrap it in a `SegmentationTask` (preprocessing + on-device augmentation),
   compile it with the ignore-aware cross-entropy and the streaming
   confusion-matrix metric, and `fit` it with backups from which a rerun resumes an
   interrupted run exactly (`segcore.resume`), CSV and TensorBoard logs;
4. evaluate on the validation split at the labels' original resolution
   (`segcore.evaluate.evaluate_split`, as `python -m segcore.evaluate` does: FCN's
   four scores, the dataset's own scores such as KITTI road's MaxF or the ISBI
   errors, and the majority-class baseline beside them), write ``metrics.json``,
   the loss/metric curves, overlay PNGs and a SavedModel.

Run directory: config.json, train.log, train_log.csv, tensorboard/, backup/ (while
running), checkpoints/final.weights.h5 (network weights), metrics.json,
curves.png, overlays/, saved_model/.
"""

import dataclasses
import json
import logging
import math
import os
import time
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from segcore import batch_norm_statistics, distribute, warm_start
from segcore import data as datasets
from segcore import resume as resumable
from segcore.augment import AugmentConfig, Augmenter
from segcore.data import images as image_io
from segcore.data.pipeline import make_pipeline, make_training_stream
from segcore.dataset_scores import describe as describe_dataset_scores
from segcore.errors import ConfigError, DataError
from segcore.evaluate import evaluate_split
from segcore.evaluate import jsonable as _jsonable
from segcore.export import export_version
from segcore.families import get_family
from segcore.gradient_registry import releasing_custom_gradients
from segcore.inference import make_predict_fn
from segcore.layers import all_layers
from segcore.losses import SegmentationCrossEntropy
from segcore.metrics import ConfusionMatrixMetric
from segcore.optimizers import FusedAdam, FusedSGD
from segcore.options import ModelOptions
from segcore.precision import choose_policy, dtype_policy, resolve_export_policy
from segcore.task import SegmentationTask
from segcore.visualize import plot_curves

log = logging.getLogger("segcore.training")

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("fixed", "poly")


@dataclasses.dataclass
class TrainConfig:
    """Everything a run needs; written to the run directory as config.json."""

    name: str = "run"
    target: str = ""  # the figure (paper or source document) this preset aims at
    family: str = "fcn"
    model: dict = dataclasses.field(default_factory=dict)  # builder keyword arguments
    dataset: str = "synthetic_road"
    data_dir: Optional[str] = None
    dataset_options: dict = dataclasses.field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    image_size: Optional[tuple] = (160, 576)  # (H, W) of training batches; None = original
    pipeline_mode: str = "resize"           # "resize" or "pad" (pad with ignore, crop)
    epochs: int = 10
    batch_size: int = 8                     # global batch size
    steps_per_epoch: Optional[int] = None
    validation_steps: Optional[int] = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "fixed"
    poly_power: float = 0.9
    loss_normalization: str = "valid"
    class_weights: Optional[list] = None
    augment: dict = dataclasses.field(default_factory=dict)  # AugmentConfig fields
    weight_map: dict = dataclasses.field(default_factory=dict)  # family.weight_map kwargs; {} = off
    weights: Optional[str] = "auto"      # auto, imagenet, a file, or None (random)
    init_from: Optional[str] = None
    recalibrate_batch_norm: int = 0        # images to re-estimate batch-norm statistics on
    precision: str = "auto"
    export_precision: str = "fp32"          # SavedModel and metrics.json: fp32, or mixed (opt in)
    jit_compile: bool = False
    devices: Optional[list] = None
    seed: int = 0
    cache: bool = True
    runs_dir: str = "runs"
    overlays: int = 6
    eval_max_images: Optional[int] = None
    export: bool = True
    verbose: object = "auto"
    backup_every: Optional[int] = None  # steps; None: every 10 min and epoch end (segcore.resume)
    overwrite: bool = False                # start a run directory holding another experiment over

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, default=list)


@dataclasses.dataclass
class ModelFamily:
    """What the engine needs from a model family.

    build(config, num_classes) -> (network, notes): called inside the strategy
      scope; `notes` (dict) are recorded in config.json (e.g. which weights were used).
    preprocess: raw RGB [0, 255] -> network input.
    image_fill: RGB of padding pixels in augmentation (the network's mean colour).
    make_predict_fn(task, config) -> uint8 images -> probabilities (default:
      resize to config.image_size and back).
    weight_map(labels [H, W] numpy, **config.weight_map) -> float32 [H, W]: per-pixel
      loss weights (U-Net's border weights), computed once per training label and
      cached with it; used when config.weight_map is not empty.
    options: the `segcore.options.ModelOptions` of `config.model` (the builder's keyword
      arguments and the family's own), from which flags and checks are derived.
    """

    name: str
    build: Callable
    preprocess: Callable
    image_fill: tuple = (0.0, 0.0, 0.0)
    make_predict_fn: Optional[Callable] = None
    weight_map: Optional[Callable] = None
    options: Optional[ModelOptions] = None


def with_weight_maps(dataset, weight_map, options):
    """(image, labels) -> (image, labels, weights) with `weight_map(labels, **options)`."""

    def compute(labels):
        return np.asarray(weight_map(labels, **options), np.float32)

    def add(image, labels):
        weights = tf.numpy_function(compute, [labels], tf.float32, stateful=False)
        weights.set_shape(labels.shape)
        return image, labels, weights

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)


def make_strategy(devices=None, cluster=None):
    """MirroredStrategy over `devices` or all local GPUs; TensorFlow's default strategy
    on one CPU (a one-device MirroredStrategy adds nothing there but a per-device input
    iterator, whose GeneratorDataset tf.data warns about at every epoch);
    MultiWorkerMirroredStrategy when `cluster` (TF_CONFIG) names several workers."""
    # --- multi-worker (segcore.distribute) ---
    if cluster is not None:
        if devices:
            raise ConfigError("--devices selects the devices of one host's MirroredStrategy; with "
                              f"TF_CONFIG naming {cluster.num_workers} workers every worker uses "
                              "all its local GPUs (restrict them with CUDA_VISIBLE_DEVICES)")
        return distribute.multi_worker_strategy(cluster)
    # --- end multi-worker ---
    if devices:
        return tf.distribute.MirroredStrategy(list(devices))
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(config, total_steps):
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"--optimizer must be one of {', '.join(OPTIMIZERS)}; got {config.optimizer!r}")
    if config.schedule not in SCHEDULES:
        raise ConfigError(
            f"--schedule must be one of {', '.join(SCHEDULES)}; got {config.schedule!r}")
    if config.learning_rate <= 0:
        raise ConfigError(f"--learning-rate must be > 0, got {config.learning_rate}")
    rate = config.learning_rate
    if config.schedule == "poly":
        rate = keras.optimizers.schedules.PolynomialDecay(
            config.learning_rate, decay_steps=max(total_steps, 1), end_learning_rate=0.0,
            power=config.poly_power)
    decay = config.weight_decay or None
    if config.optimizer == "adam":
        optimizer = FusedAdam(rate, weight_decay=decay)
    else:
        optimizer = FusedSGD(rate, momentum=config.momentum, weight_decay=decay)
    if decay:
        # Decoupled decay on kernels only: biases are not decayed (Caffe decay_mult 0).
        optimizer.exclude_from_weight_decay(var_names=["bias", "beta", "gamma"])
    return optimizer


def build_inference_task(config, family, num_classes, policy):
    """`family`'s network for `config` built under dtype `policy`, without pretrained
    weights (they are loaded or copied after), in a `SegmentationTask` with no augmentation."""
    with dtype_policy(policy):
        network, _ = family.build(config.replace(weights=None, init_from=None), num_classes)
    return SegmentationTask(network, family.preprocess)


def load_run(run_dir, precision="fp32"):
    """(config, family, task, num_classes) of a finished run directory: its network rebuilt
    from config.json by the family it records, under `precision` (fp32 or mixed), with
    checkpoints/final.weights.h5 loaded."""
    config_path = os.path.join(run_dir, "config.json")
    weights_path = os.path.join(run_dir, "checkpoints", "final.weights.h5")
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise ConfigError(f"{run_dir}: missing {path} (not a finished run directory)")
    try:
        with open(config_path) as f:
            document = json.load(f)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{config_path}: not a readable JSON file ({error})") from None
    config = config_from_document(document, config_path)
    family = get_family(config.family)
    num_classes = document.get("resolved", {}).get("num_classes") \
        or datasets.info(config.dataset).num_classes
    task = build_inference_task(config, family, num_classes, resolve_export_policy(precision))
    task.network.load_weights(weights_path)
    return config, family, task, num_classes


def _check_num_classes(config, info):
    requested = config.model.get("num_classes")
    if requested is not None and requested != info.num_classes:
        raise ConfigError(
            f"num_classes={requested} is inconsistent with dataset {info.name!r}, "
            f"which has {info.num_classes} classes ({', '.join(info.class_names)})"
        )
    return info.num_classes


def batch_norm_warm_up(network, total_steps, started_from=()):
    """How far the run's steps move the batch-norm moving averages from their initial
    values (mean 0, variance 1), with a warning at start-up when most of the initial
    value would be left: evaluation would then normalise with untrained statistics.
    Layers named in `started_from` (statistics copied by --init-from or re-estimated
    by --recalibrate-batch-norm) do not start at 0 and 1 and are not counted.

    Returns None without such trainable BatchNormalization layers, else a dict for
    config.json: the largest momentum m, the fraction m**steps of the initial value
    left after the run, and the steps that leave 5 % of it (log 0.05 / log m).
    """
    momenta = [layer.momentum for layer in all_layers(network)
               if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
               and layer.name not in started_from]
    if not momenta:
        return None
    momentum = max(momenta)
    left = momentum ** total_steps
    needed = math.ceil(math.log(0.05) / math.log(momentum)) if momentum > 0 else 1
    if left > 0.5:
        log.warning("batch norm: with momentum %g the moving averages keep %.0f %% of their "
                    "initial values after this run's %d steps (they need %d steps to keep "
                    "5 %%): evaluation will see untrained statistics. Train longer or lower "
                    "--batch-norm-momentum / --set model.batch_norm_momentum (e.g. 0.9 needs %d)",
                    momentum, 100 * left, total_steps, needed,
                    math.ceil(math.log(0.05) / math.log(0.9)))
    return {"momentum": momentum, "initial_value_left": left, "steps_to_5_percent": needed}


def recalibrate_batch_norm(network, preprocess, train_raw, count):
    """Re-estimate the batch-norm statistics of `network` on the first `count` training
    images, keeping its inference function (`segcore.batch_norm_statistics`); returns
    the config.json record."""
    if count < 0:
        raise ConfigError(f"--recalibrate-batch-norm must be >= 0 images, got {count}")
    images = (preprocess(tf.cast(element[0][None], tf.float32))
              for element in train_raw.take(count))
    layers = batch_norm_statistics.recalibrate(network, images)
    log.info("batch norm: statistics of %d layers re-estimated on %d training images, "
             "the network's function unchanged", layers, count)
    return {"layers": layers, "images": count}


def check_labels(dataset, num_classes, ignore_label, name):
    """In-graph check: every label is < num_classes or the ignore label."""

    def check(image, labels):
        bad = tf.logical_and(tf.cast(labels, tf.int32) >= num_classes,
                             tf.cast(labels, tf.int32) != ignore_label)
        values = tf.unique(tf.reshape(tf.boolean_mask(labels, bad), [-1]))[0][:8]
        assertion = image_io.assert_that(
            tf.logical_not(tf.reduce_any(bad)),
            "DataError: ", name, ": label values ",
            tf.strings.reduce_join(tf.strings.as_string(values), separator=","),
            f" are >= num_classes={num_classes} and not the ignore label {ignore_label}",
        )
        with tf.control_dependencies([assertion]):
            return tf.identity(image), tf.identity(labels)

    return dataset.map(check, num_parallel_calls=tf.data.AUTOTUNE)


def load_split(config, split, num_classes, info):
    options = dict(config.dataset_options)
    if config.dataset in datasets.GENERATED and config.image_size is not None:
        options.setdefault("size", tuple(config.image_size))
    raw = datasets.load(config.dataset, config.data_dir, split, **options)
    return check_labels(raw, num_classes, info.ignore_label, f"{config.dataset}/{split}")


def _setup_logging(run_dir):
    handler = logging.FileHandler(os.path.join(run_dir, "train.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in root.handlers):
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)
    root.setLevel(logging.INFO)
    # absl's INFO records are TensorFlow's internals (a SavedModel export logs one line of
    # thousands of characters per signature about renamed capture names): warnings and up only.
    logging.getLogger("absl").setLevel(logging.WARNING)
    return handler


def train_and_evaluate(config, family, callbacks=()):
    """Train `family`'s network as `config` says; return the final metrics dict.

    `callbacks` are extra Keras callbacks (after the engine's own).
    """
    run_dir = os.path.abspath(os.path.join(config.runs_dir, config.name))
    # --- multi-worker: only the chief writes run_dir; the others a temporary copy ---
    cluster = distribute.cluster_from_env()
    write_dir = distribute.worker_run_dir(run_dir, cluster)
    # --- end multi-worker ---
    if distribute.writes_run_dir(cluster):
        resumable.prepare_run_dir(run_dir, config)  # writable; same experiment (or --overwrite)
    else:
        os.makedirs(os.path.join(write_dir, "checkpoints"), exist_ok=True)
    handler = _setup_logging(write_dir)
    try:
        return _train(config, family, write_dir, list(callbacks), cluster, run_dir)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        distribute.remove_worker_dir(write_dir, cluster)


def _train(config, family, run_dir, extra_callbacks, cluster=None, chief_run_dir=None):
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    info = datasets.info(config.dataset)
    num_classes = _check_num_classes(config, info)
    if config.dataset in datasets.GENERATED:
        log.warning("dataset %s: training on procedurally generated data (no download); "
                    "pass --dataset and --data-dir for a real dataset", config.dataset)
    augment = AugmentConfig(**config.augment)
    policy, policy_reason = choose_policy(config.precision)
    export_policy = resolve_export_policy(config.export_precision)
    strategy = make_strategy(config.devices, cluster)
    log.info("run %s: %s on %s, %d replica(s), dtype policy %s", config.name, family.name,
             config.dataset, strategy.num_replicas_in_sync, policy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"--batch-size {config.batch_size} is not divisible by the "
                          f"{strategy.num_replicas_in_sync} replicas")

    train_raw = load_split(config, config.train_split, num_classes, info)
    if config.weight_map:
        if family.weight_map is None:
            raise ConfigError(f"weight_map: the {family.name} family has no per-pixel weight map")
        train_raw = with_weight_maps(train_raw, family.weight_map, config.weight_map)
    val_raw = load_split(config, config.val_split, num_classes, info)
    pipeline = dict(size=config.image_size, mode=config.pipeline_mode, seed=config.seed,
                    ignore_label=info.ignore_label, image_fill=family.image_fill)
    if cluster is not None:  # multi-worker: how each worker reads its share
        pipeline["auto_shard"] = distribute.shard_policy(train_raw)
        log.info("input sharded by %s across %d workers", pipeline["auto_shard"],
                 cluster.num_workers)
    train_data = make_pipeline(train_raw, config.batch_size, training=True,
                               cache=cache_pays(config, train_raw), **pipeline)
    # Only the pairs fit() validates on are decoded and cached (a partly read cache is
    # thrown away by tf.data, with a warning, at every epoch).
    val_fit = (val_raw.take(config.validation_steps * config.batch_size)
               if config.validation_steps else val_raw)
    val_data = make_pipeline(val_fit, config.batch_size, training=False, cache=config.cache,
                             **pipeline)
    distribute.seed_augmentation(config.seed, cluster)  # multi-worker: draws differ per worker
    steps = config.steps_per_epoch or _count_batches(train_data, run_dir)
    if steps == 0:
        raise DataError(f"{config.dataset}/{config.train_split}: fewer pairs than one batch "
                        f"of {config.batch_size}")

    resolved = {"dtype_policy": policy, "dtype_policy_reason": policy_reason,
                "export_dtype_policy": export_policy,
                "replicas": strategy.num_replicas_in_sync, "num_classes": num_classes,
                "steps_per_epoch": steps,
                **distribute.describe(cluster, strategy),
                **({"data_sharding": pipeline["auto_shard"]} if cluster is not None else {})}
    with dtype_policy(policy), strategy.scope():
        network, notes = family.build(config, num_classes)
        resolved.update(notes)
        started_from = set()  # batch-norm layers whose statistics do not start at 0 and 1
        if config.init_from:  # same-named, same-shaped layers; a table of all in the log
            resolved.update(warm_start.init_from_run(network, config.init_from))
            started_from = {path.split("/")[-1] for path in resolved["init_from_layers"]}
        if config.recalibrate_batch_norm:
            resolved["batch_norm_recalibrated"] = recalibrate_batch_norm(
                network, family.preprocess, train_raw, config.recalibrate_batch_norm)
            started_from = {layer.name for layer in all_layers(network)}
        warm_up = batch_norm_warm_up(network, steps * config.epochs, started_from)
        if warm_up is not None:
            resolved["batch_norm_moving_averages"] = warm_up
        task = SegmentationTask(network, family.preprocess,
                                Augmenter(augment, info.ignore_label, family.image_fill)
                                if augment.geometric or augment.photometric or augment.elastic_sigma
                                else None, seed=config.seed)
        task.compile(
            optimizer=make_optimizer(config, steps * config.epochs),
            loss=SegmentationCrossEntropy(num_classes, info.ignore_label, config.class_weights,
                                          config.loss_normalization),
            metrics=[ConfusionMatrixMetric(num_classes, info.ignore_label)],
            jit_compile=config.jit_compile,
        )
    _write_config(run_dir, config, resolved)

    # --- resumable training (segcore.resume): backups, exact resume, the run's record ---
    # Multi-worker: every worker restores from the chief's backup (runs/ on a file system
    # all hosts see); only the chief writes backups and the record.
    run = resumable.ResumableRun(chief_run_dir or run_dir, config, steps,
                                 writes=distribute.writes_run_dir(cluster),
                                 synchronous=cluster is not None)

    def train_stream(first_batch, batches):
        with distribute.same_global_seed(config.seed, cluster):  # one data order on all workers
            return make_training_stream(
                train_raw, config.batch_size, batches, first_batch,
                batches_per_pass=None if config.steps_per_epoch else steps,
                cache=cache_pays(config, train_raw), **pipeline)

    callbacks = [keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"),
                                             write_graph=False)] + extra_callbacks
    try:
        fit_started = time.time()
        with releasing_custom_gradients():  # or the process keeps this network: see the module
            history = run.fit(task, train_stream, val_data, callbacks,
                              validation_steps=config.validation_steps, verbose=config.verbose)
    except tf.errors.OpError as error:
        raise distribute.lost_worker_error(error, cluster) \
            or image_io.data_error_from(error, f"{config.dataset}: ") from None
    # --- end of resumable training ---
    fit_seconds = time.time() - fit_started
    network.save_weights(os.path.join(run_dir, "checkpoints", "final.weights.h5"))
    if not distribute.writes_run_dir(cluster):  # multi-worker: the chief evaluates and exports
        log.info("%s done; the chief %s evaluates and writes the run directory",
                 cluster.name(), cluster.chief)
        return {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()}}

    if export_policy != policy or cluster is not None:
        # The evaluation that writes metrics.json runs at the exported model's precision.
        log.info("evaluation and SavedModel in %s (trained in %s)", export_policy, policy)
        task = build_inference_task(config, family, num_classes, export_policy)
        task.network.set_weights(network.get_weights())
        network = task.network
    predict_fn = inference_predict_fn(family, task, config)
    predict = tf.function(predict_fn, reduce_retracing=True)
    try:
        metrics = evaluate_split(predict, val_raw, info, num_classes, config.eval_max_images,
                                 overlays=config.overlays,
                                 overlay_dir=os.path.join(run_dir, "overlays"),
                                 split=config.val_split)
    except tf.errors.OpError as error:
        raise image_io.data_error_from(error, f"{config.dataset}: ") from None
    metrics["history"] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    metrics["train_seconds"] = time.time() - started
    metrics["fit_seconds"] = fit_seconds
    plot_curves(history.history, os.path.join(run_dir, "curves.png"), title=config.name)
    if config.export:
        export_version(os.path.join(run_dir, "saved_model"), config, family, predict_fn,
                       network.variables, num_classes, info, dtype_policy=export_policy)
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump(_jsonable(metrics), f, indent=2)
    run.finish()  # the record is complete: the backup goes
    log_scores(config, metrics, time.time() - started)
    return metrics


def log_scores(config, metrics, seconds):
    """The run's closing log lines: the validation scores, each with its baseline."""
    majority = metrics["baseline"]
    for key in ("road", "isbi"):
        if key in metrics:
            log.info("run %s, %s/%s: %s", config.name, config.dataset, config.val_split,
                     describe_dataset_scores(key, metrics[key], majority.get(key)))
    log.info("run %s finished in %.0f s: validation mean IoU %.4f (majority-class baseline "
             "%.4f), pixel accuracy %.4f (%.4f; %s)", config.name, seconds, metrics["mean_iou"],
             majority["mean_iou"], metrics["pixel_accuracy"], majority["pixel_accuracy"],
             majority["predictor"])


def inference_predict_fn(family, task, config):
    """uint8 images -> probabilities of the run's evaluation and SavedModel."""
    if family.make_predict_fn:
        return family.make_predict_fn(task, config)
    return make_predict_fn(task, config.image_size)


def cache_pays(config, train_raw):
    """Whether to cache the decoded training pairs: only when the run reads each of them
    at least once. A run of fewer steps than one pass never completes the cache, which
    tf.data then throws away with a warning ("did not fully read the dataset being
    cached"), and reads no pair twice anyway."""
    if not config.cache or not config.steps_per_epoch:
        return config.cache
    count = int(train_raw.cardinality().numpy())
    return count < 0 or config.steps_per_epoch * config.epochs * config.batch_size >= count


def _count_batches(dataset, run_dir):
    count = dataset.cardinality().numpy()
    if count >= 0:
        return int(count)
    return int(dataset.reduce(0, lambda n, _: n + 1).numpy())


def config_from_document(document, source="config"):
    """TrainConfig of a config.json document (its "resolved" record is not a field)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(document) - fields - {"resolved"})
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")
    values = {k: v for k, v in document.items() if k in fields}
    if isinstance(values.get("image_size"), list):
        values["image_size"] = tuple(values["image_size"])
    return TrainConfig(**values)


def _write_config(run_dir, config, resolved):
    document = json.loads(config.to_json())
    document["resolved"] = resolved
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(document, f, indent=2)
