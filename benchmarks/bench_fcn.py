"""FCN-8s training and inference speed and peak memory, next to a plain Keras FCN-8s.

    python benchmarks/bench_fcn.py                  # 160x576, batch 2, 20 timed steps
    python benchmarks/bench_fcn.py --quick          # 3 timed steps: proves it runs
    python benchmarks/bench_fcn.py --xla --steps 30 --batch-size 4 --size 192 640

Rows (each measured in its own fresh process, so peak RSS figures don't mix):

* plain: FCN-8s written the seeds' way (seed 000, Step 2 `layers()`):
  `keras.applications.VGG16(include_top=False, weights=None)`, fc6 (7x7, 4096)
  and fc7 (1x1, 4096) convolutions with dropout 0.5, then 1x1 conv to
  num_classes on fc7, 4x4/2 'same' transposed conv to pool4's 512 channels, add,
  4x4/2 to pool3's 256 channels, add, 16x16/8 to num_classes. Compiled with
  Keras' sparse categorical cross-entropy from logits and Adam 1e-3, float32,
  `jit_compile=False` (with --xla, also True). Fed float32 images (the seeds
  fed raw [0, 255] pixels).
* fcn_tf: this package's FCN-8s as `python -m fcn_tf.train --preset kitti_fcn8s`
  builds it (random weights): `build_fcn("fcn8s")` in a `SegmentationTask`
  (preprocessing inside the model), `SegmentationCrossEntropy`, Adam 1e-3, the
  `ConfusionMatrixMetric`, under the one-device `MirroredStrategy` of the
  training loop; fp32 and mixed precision (`mixed_bfloat16` on a CPU,
  `mixed_float16` on a GPU, as `segcore.precision.resolve_policy("mixed")`).
  Fed uint8 images. The preset's on-device augmentation is off unless --augment
  (the plain peer has none).

Both get the same synthetic batch (random pixels; labels 0/1, a road-like lower
part), random weights, no download. Train img/s = batch / median step time of
`train_on_batch` after warm-up steps (tracing, optimizer slots); infer img/s the
same for `predict_on_batch`. Peak RSS is the process's high-water mark after
building, training and predicting (TensorFlow's own footprint included).

Target (from the issue): fcn_tf mixed >= 1.5x plain fp32 in train images/s.
That figure was measured on a CPU with AVX-512 BF16; where bfloat16 is emulated
(the header says so) mixed precision is expected to be slower, not faster.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

NUM_CLASSES = 2          # KITTI road: not_road, road
TARGET_MIXED_VS_PLAIN = 1.5
DEFAULT_SIZE = (160, 576)


# --------------------------------------------------------------------------- models


def build_plain_fcn8s(num_classes=NUM_CLASSES, input_shape=(None, None, 3), dropout=0.5):
    """The seeds' FCN-8s in plain Keras: VGG16 + fc6/fc7 + the seeds' decoder."""
    import keras

    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=input_shape)
    layer3 = vgg.get_layer("block3_pool").output
    layer4 = vgg.get_layer("block4_pool").output
    x = keras.layers.Conv2D(4096, 7, padding="same", activation="relu", name="fc6")(vgg.output)
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = keras.layers.Conv2D(4096, 1, activation="relu", name="fc7")(x)
    layer7 = keras.layers.Dropout(dropout, name="drop7")(x)
    fcn8 = keras.layers.Conv2D(num_classes, 1, name="fcn8")(layer7)
    fcn9 = keras.layers.Conv2DTranspose(layer4.shape[-1], 4, strides=2, padding="same",
                                        name="fcn9")(fcn8)
    fcn9 = keras.layers.Add(name="fcn9_plus_vgg_layer4")([fcn9, layer4])
    fcn10 = keras.layers.Conv2DTranspose(layer3.shape[-1], 4, strides=2, padding="same",
                                         name="fcn10")(fcn9)
    fcn10 = keras.layers.Add(name="fcn10_plus_vgg_layer3")([fcn10, layer3])
    fcn11 = keras.layers.Conv2DTranspose(num_classes, 16, strides=8, padding="same",
                                         name="fcn11")(fcn10)
    return keras.Model(vgg.input, fcn11, name="plain_fcn8s")


def build_plain(xla):
    import keras

    model = build_plain_fcn8s()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=xla)
    return model, "float32"


def build_package(precision, xla, augment):
    """The task `python -m fcn_tf.train --preset kitti_fcn8s` trains, random weights."""
    from fcn_tf.presets import PRESETS
    from fcn_tf.train import FAMILY
    from segcore.augment import AugmentConfig, Augmenter
    from segcore.data import info as dataset_info
    from segcore.losses import SegmentationCrossEntropy
    from segcore.metrics import ConfusionMatrixMetric
    from segcore.precision import dtype_policy, resolve_policy
    from segcore.task import SegmentationTask
    from segcore.training import make_optimizer, make_strategy

    config = PRESETS["kitti_fcn8s"].replace(weights=None, jit_compile=xla)
    info = dataset_info(config.dataset)
    policy = resolve_policy(precision)
    augmenter = (Augmenter(AugmentConfig(**config.augment), info.ignore_label, FAMILY.image_fill)
                 if augment else None)
    with dtype_policy(policy), make_strategy(config.devices).scope():
        network, _ = FAMILY.build(config, info.num_classes)
        task = SegmentationTask(network, FAMILY.preprocess, augmenter)
        task.compile(
            optimizer=make_optimizer(config, total_steps=1000),
            loss=SegmentationCrossEntropy(info.num_classes, info.ignore_label,
                                          config.class_weights, config.loss_normalization),
            metrics=[ConfusionMatrixMetric(info.num_classes, info.ignore_label)],
            jit_compile=config.jit_compile,
        )
    return task, policy


def synthetic_batch(batch_size, size, seed=0):
    """uint8 images [B, H, W, 3] of random pixels; uint8 labels [B, H, W]: road below a
    random horizon, not road above."""
    import numpy as np

    height, width = size
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, height, width, 3), dtype=np.uint8)
    horizons = rng.integers(height // 3, 2 * height // 3, batch_size)
    labels = (np.arange(height)[None, :, None] >= horizons[:, None, None])
    labels = np.broadcast_to(labels, (batch_size, height, width)).astype(np.uint8)
    return images, labels


# --------------------------------------------------------------------------- one configuration


def measure(config):
    """Figures of one configuration (dict with model, precision, xla, ...), in this process."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    size = tuple(config["size"])
    if config["model"] == "plain":
        if size[0] % 32 or size[1] % 32:
            raise SystemExit(f"the plain FCN-8s needs --size multiples of 32, got {size}")
        model, policy = build_plain(config["xla"])
    else:
        model, policy = build_package(config["precision"], config["xla"], config["augment"])
    images, labels = synthetic_batch(config["batch_size"], size)
    if config["model"] == "plain":
        images = images.astype(np.float32)
    images, labels = tf.constant(images), tf.constant(labels)
    batch = config["batch_size"]
    load_before = os.getloadavg()[0]

    train = common.time_calls(lambda: model.train_on_batch(images, labels),
                              config["steps"], config["warmup"], batch)
    result = {**config, "policy": policy, "params": model.count_params(),
              "train_rate": train.median_rate, "train": train.summary()}
    if config.get("infer", True):
        infer = common.time_calls(lambda: model.predict_on_batch(images),
                                  config["steps"], config["warmup"], batch)
        result.update(infer_rate=infer.median_rate, infer=infer.summary())
    result["load_average"] = (load_before + os.getloadavg()[0]) / 2
    return result


def configurations(args):
    common_fields = {"batch_size": args.batch_size, "size": list(args.size), "steps": args.steps,
                     "warmup": args.warmup, "augment": args.augment}
    rows = [("plain", "fp32", False), ("fcn_tf", "fp32", False), ("fcn_tf", "mixed", False)]
    if args.xla:
        rows += [("plain", "fp32", True), ("fcn_tf", "fp32", True), ("fcn_tf", "mixed", True)]
    return [dict(common_fields, model=m, precision=p, xla=x) for m, p, x in rows
            if m == "plain" or p in args.precisions]


def training_configuration(batch_size=2, size=DEFAULT_SIZE, steps=20, warmup=3, infer=False):
    """fcn_tf FCN-8s fp32 training, as `python -m fcn_tf.train` runs it (for bench_pipeline)."""
    return {"model": "fcn_tf", "precision": "fp32", "xla": False, "augment": False,
            "batch_size": batch_size, "size": list(size), "steps": steps, "warmup": warmup,
            "infer": infer}


def run_configuration(config, timeout=None):
    """`measure(config)` in a fresh Python process (so its peak RSS is its own)."""
    return common.run_isolated(common.child_argv(__file__, config),
                               timeout=timeout)


# --------------------------------------------------------------------------- report


def report(results, args):
    baseline = next((r for r in results if r.get("model") == "plain" and not r.get("xla")
                     and "error" not in r), None)
    base_train = baseline and baseline["train_rate"]
    base_infer = baseline and baseline.get("infer_rate")
    rows = []
    for r in results:
        name = r["model"] + (" +XLA" if r["xla"] else "") + \
            (" +augment" if r["model"] == "fcn_tf" and r["augment"] else "")
        precision = r["precision"] if "error" in r else f"{r['precision']} ({r['policy']})"
        if "error" in r:
            rows.append([name, precision] + ["n/a"] * 6)
            continue
        rows.append([name, precision, common.number(r["train_rate"]),
                     common.number(r.get("infer_rate")), common.number(r["peak_rss_mb"], 0),
                     common.ratio(r["train_rate"], base_train),
                     common.ratio(r.get("infer_rate"), base_infer),
                     common.number(r["load_average"], 1)])
    headers = ["model", "precision", "train img/s", "infer img/s", "peak RSS MB",
               "train vs plain fp32", "infer vs plain fp32", "load avg"]
    print(common.markdown_table(headers, rows))
    for r in results:
        if "error" in r:
            print(f"FAILED {r['model']} {r['precision']} xla={r['xla']}: {r['error']}")

    mixed = next((r for r in results if r.get("model") == "fcn_tf" and r.get("precision") == "mixed"
                  and not r.get("xla") and "error" not in r), None)
    if mixed and base_train:
        achieved = mixed["train_rate"] / base_train
        verdict = "met" if achieved >= TARGET_MIXED_VS_PLAIN else "NOT met"
        print(f"\ntarget: fcn_tf mixed ({mixed['policy']}) train img/s >= "
              f"{TARGET_MIXED_VS_PLAIN}x plain fp32: {achieved:.2f}x, {verdict}")
    if args.quick:
        print("(--quick: few steps; provisional figures)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 timed steps after 2 warm-up steps (proves the script runs)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("H", "W"))
    parser.add_argument("--xla", action="store_true", help="also measure jit_compile=True")
    parser.add_argument("--augment", action="store_true",
                        help="fcn_tf rows with the kitti_fcn8s preset's on-device augmentation")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "mixed"],
                        choices=["fp32", "mixed"],
                        help="fcn_tf rows to measure (the plain fp32 baseline always runs)")
    common.add_isolation_arguments(parser)
    args = parser.parse_args(argv)

    if common.run_child(args, measure):
        return 0
    common.default_steps(args, quick=(3, 2), full=(20, 3))
    print(__doc__.splitlines()[0])
    print(common.machine_summary())
    print(f"FCN-8s, {args.size[0]}x{args.size[1]}, batch {args.batch_size}, {NUM_CLASSES} classes, "
          f"{args.warmup} warm-up + {args.steps} timed steps per figure, random weights, "
          "synthetic batch\n")
    results = []
    for config in configurations(args):
        label = f"{config['model']} {config['precision']}" + (" +XLA" if config["xla"] else "")
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        result = run_configuration(config, args.timeout)
        results.append(dict(config, **result))
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
