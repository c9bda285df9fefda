"""DeepLabv3+ training and inference speed at 513x513, next to keras-hub's DeepLabV3+ ResNet-50.

    /tmp/bench-venv/bin/python benchmarks/bench_deeplab.py          # 3 warm-up + 10 timed steps
    /tmp/bench-venv/bin/python benchmarks/bench_deeplab.py --quick  # fp32, 1 + 2 steps: proves it
                                                                    # runs
    python benchmarks/bench_deeplab.py --no-keras-hub --backbones mobilenetv2 --precisions fp32

Rows (each in its own fresh process, so peak RSS figures don't mix), random
weights, 21 classes, batch 2, one synthetic batch held in memory:

* deeplab_tf xception65 / resnet50 / mobilenetv2: the network and task that
  `python -m deeplab_tf.train --preset voc_xception65_os16` builds, with the
  backbone swapped: OS16, separable ASPP and decoder, the L2 weight decay,
  `SegmentationTask` (preprocessing in the model), `SegmentationCrossEntropy`,
  the `ConfusionMatrixMetric`, SGD momentum 0.9 with the poly schedule, under
  the training loop's one-device `MirroredStrategy`; sync batch norm off (one
  replica). Fed uint8 images at --size (default 513x513, the paper's crop).
* keras_hub resnet50: `keras_hub.models.DeepLabV3Backbone(image_encoder=
  ResNetBackbone(<ResNet-50 v1>), low_level_feature_key="P2",
  spatial_pyramid_pooling_key="P5", upsampling_size=8, dilation_rates=[6, 12,
  18])` + `DeepLabV3ImageSegmenter(num_classes=21)` (keras-hub 0.32 has no
  `DeepLabV3Plus` class: this pair is its DeepLabV3+), compiled with the same
  SGD and a plain `SparseCategoricalCrossentropy(from_logits=True)`, no
  metrics. Its fixed UpSampling2D factors need sizes divisible by 32, so it runs
  at the multiple of 32 nearest --size (512x512 for 513). Architecture
  differences: ASPP on the stride-32 map (no atrous ResNet), plain 3x3
  convolutions, one 1x1 head convolution: not the same multiply-adds as the
  deeplab_tf ResNet-50 row, which is OS16 with atrous convolutions.

fp32 and mixed (`segcore.precision.resolve_policy("mixed")`: mixed_bfloat16 on a
CPU, emulated and slow where the CPU has no native bfloat16: the header says;
there a mixed Xception-65 or ResNet-50 row takes about 10 minutes even with
--quick, so --quick measures fp32 only unless --precisions is given).
Train img/s = batch / median `train_on_batch` time after the warm-up steps;
infer img/s the same for `predict_on_batch`.

keras-hub must be installed WITHOUT its dependencies (they pull the full GPU
TensorFlow) in a venv of its own, then run this script with that venv's python:

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1
    /tmp/bench-venv/bin/pip install scipy==1.17.1 pillow==13.0.0 matplotlib==3.11.2 imageio==2.38.1
    /tmp/bench-venv/bin/pip install --no-deps keras-hub==0.32.0
    /tmp/bench-venv/bin/pip install regex tokenizers      # what keras_hub imports at run time

(The repository is put on sys.path by this script; the package need not be
installed there.) Without keras_hub the script stops with this message, unless
--no-keras-hub is given.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

sys.path.insert(0, common.REPO_ROOT)

NUM_CLASSES = 21
BACKBONES = ("xception65", "resnet50", "mobilenetv2")
PRECISIONS = ("fp32", "mixed")
SETUP = __doc__[__doc__.index("keras-hub must be installed"):
                __doc__.index("(The repository")].strip()


def keras_hub_available():
    try:
        import keras_hub  # noqa: F401
    except ImportError as error:
        return str(error)
    return None


# --------------------------------------------------------------------------- models


def build_deeplab_tf(backbone, precision, batch_size=2, size=(513, 513)):
    """The task `python -m deeplab_tf.train --preset voc_xception65_os16` builds, `backbone`
    swapped in (`common.build_preset_task`)."""
    task, _, policy = common.build_preset_task("deeplab", "voc_xception65_os16", precision,
                                               NUM_CLASSES, batch_size, size,
                                               {"backbone": backbone})
    return task, policy


def build_keras_hub(precision):
    import keras
    import keras_hub

    from segcore.precision import resolve_policy

    policy = resolve_policy(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        encoder = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
            stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
            use_pre_activation=False)
        backbone = keras_hub.models.DeepLabV3Backbone(
            image_encoder=encoder, low_level_feature_key="P2", spatial_pyramid_pooling_key="P5",
            upsampling_size=8, dilation_rates=[6, 12, 18], projection_filters=48)
        model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone,
                                                         num_classes=NUM_CLASSES)
        model.compile(optimizer=keras.optimizers.SGD(0.007, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[])
    finally:
        keras.config.set_dtype_policy(previous)
    return model, policy


def synthetic_batch(batch_size, size, seed=0):
    """uint8 images of random pixels; labels: a class-k rectangle on background, per image."""
    import numpy as np

    rng = np.random.default_rng(seed)
    height, width = size
    images = rng.integers(0, 256, (batch_size, height, width, 3), dtype=np.uint8)
    labels = np.zeros((batch_size, height, width), np.uint8)
    for b in range(batch_size):
        labels[b, height // 4:3 * height // 4,
               width // 4:3 * width // 4] = rng.integers(1, NUM_CLASSES)
    return images, labels


# --------------------------------------------------------------------------- one configuration


def measure(config):
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    size = tuple(config["size"])
    if config["model"] == "keras_hub":
        model, policy = build_keras_hub(config["precision"])
    else:
        model, policy = build_deeplab_tf(config["backbone"], config["precision"],
                                         config["batch_size"], size)
    images, labels = synthetic_batch(config["batch_size"], size)
    if config["model"] == "keras_hub":
        images = images.astype(np.float32) / 127.5 - 1.0
    images, labels = tf.constant(images), tf.constant(labels)
    batch = config["batch_size"]
    load_before = os.getloadavg()[0]
    train = common.time_calls(lambda: model.train_on_batch(images, labels),
                              config["steps"], config["warmup"], batch)
    infer = common.time_calls(lambda: model.predict_on_batch(images),
                              config["steps"], config["warmup"], batch)
    return {**config, "policy": policy, "params": int(model.count_params()),
            "train_rate": train.median_rate, "infer_rate": infer.median_rate,
            "train": train.summary(), "infer": infer.summary(),
            "load_average": (load_before + os.getloadavg()[0]) / 2}


def configurations(args):
    rows = []
    for precision in args.precisions:
        for backbone in args.backbones:
            rows.append({"model": "deeplab_tf", "backbone": backbone, "precision": precision,
                         "size": list(args.size)})
        if not args.no_keras_hub:
            rows.append({"model": "keras_hub", "backbone": "resnet50", "precision": precision,
                         "size": [max(32, round(s / 32) * 32) for s in args.size]})
    for row in rows:
        row.update(batch_size=args.batch_size, steps=args.steps, warmup=args.warmup)
    return rows


def report(results, args):
    reference = {r["precision"]: r for r in results
                 if r["model"] == "keras_hub" and "error" not in r}
    rows = []
    for r in results:
        name = f"{r['model']} {r['backbone']}"
        size = "x".join(str(s) for s in r["size"])
        if "error" in r:
            rows.append([name, r["precision"], size] + ["n/a"] * 7)
            continue
        ref = reference.get(r["precision"])
        rows.append([name, f"{r['precision']} ({r['policy']})", size,
                     common.number(r["params"] / 1e6, 1), common.number(r["train_rate"]),
                     common.number(r["infer_rate"]), common.number(r["peak_rss_mb"], 0),
                     common.ratio(r["train_rate"], ref and ref["train_rate"]),
                     common.ratio(r["infer_rate"], ref and ref["infer_rate"]),
                     common.number(r["load_average"], 1)])
    headers = ["model", "precision", "input", "params M", "train img/s", "infer img/s",
               "peak RSS MB", "train vs keras-hub", "infer vs keras-hub", "load avg"]
    print(common.markdown_table(headers, rows))
    for r in results:
        if "error" in r:
            print(f"FAILED {r['model']} {r['backbone']} {r['precision']}: {r['error']}")
    if args.quick:
        print("(--quick: few steps; provisional figures)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=SETUP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(513, 513), metavar=("H", "W"))
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--precisions", nargs="+", default=None, choices=PRECISIONS,
                        help="default: fp32 and mixed (fp32 only with --quick)")
    parser.add_argument("--no-keras-hub", action="store_true", help="skip the keras-hub rows")
    common.add_isolation_arguments(parser)
    args = parser.parse_args(argv)

    if common.run_child(args, measure):
        return 0
    if not args.no_keras_hub:
        missing = keras_hub_available()
        if missing:
            print(f"bench_deeplab.py: keras_hub is not importable with {sys.executable} "
                  f"({missing}).\n{SETUP}\nOr pass --no-keras-hub.", file=sys.stderr)
            return 2
    if args.precisions is None:
        args.precisions = ["fp32"] if args.quick else list(PRECISIONS)
    common.default_steps(args, quick=(2, 1), full=(10, 3))
    print(__doc__.splitlines()[0])
    print(common.machine_summary())
    print(f"DeepLabv3+, batch {args.batch_size}, {NUM_CLASSES} classes, {args.warmup} warm-up + "
          f"{args.steps} timed steps per figure, random weights, synthetic batch\n")
    results = []
    for config in configurations(args):
        label = f"{config['model']} {config['backbone']} {config['precision']}"
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        result = common.run_isolated(common.child_argv(__file__, config),
                                     timeout=args.timeout)
        results.append(dict(config, **result))
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
