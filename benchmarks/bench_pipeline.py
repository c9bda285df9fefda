"""Input-pipeline images/s on KITTI-sized PNG pairs, next to the seeds' generator and training.

    python benchmarks/bench_pipeline.py                 # 64 pairs, 3 timed epochs each
    python benchmarks/bench_pipeline.py --quick         # 1 timed epoch, short training probe
    python benchmarks/bench_pipeline.py --train-rate 0.8 --pairs 128 --data-dir DATA_ROAD

Data: the real KITTI Road pairs (375x1242 PNG image + colour-coded road mask)
under --data-dir, else $SEGCORE_DATASETS/kitti_road, else ../shared/datasets/
kitti_road beside the repository, copied N times into a temporary `data_road`
layout under /tmp (removed afterwards) so there are --pairs pairs. Every file is
read once before timing, so all rows read from the OS page cache: the figures
are decode + resize + batch, not disk speed.

Rows, all at 160x576 (--size), batch 16 (--batch-size):

* generator: the seeds' `helper.gen_batch_function` (Udacity CarND starter):
  shuffle the file list, then per batch read each image and mask (imageio),
  resize both bilinearly to 160x576 (PIL, as `scipy.misc.imresize` did; it is
  gone from SciPy), one-hot the mask against the background colour, and stack
  NumPy batches. One thread, as the seeds ran it.
* pipeline cold: `segcore.data.load("kitti_road", ..., "training")` +
  `make_pipeline(..., cache=False)`: every epoch decodes every PNG (parallel
  tf.data map), the training order (shuffle, drop the last partial batch).
* pipeline cached: the same with cache=True (what `python -m fcn_tf.train`
  uses): the first epoch decodes and fills the cache and is not timed; the
  steady state resizes cached pairs.
* training: the FCN-8s training step's consumption rate (fcn_tf, fp32, 160x576,
  batch 2, synthetic in-memory batch), measured here in a fresh process by
  benchmarks/bench_fcn.py, or given with --train-rate.

Pipeline rates are throughput over the timed window (all images / all time):
with prefetching, per-batch times are bursty by design.

Targets (from the issue): the pipeline >= 3x the generator; the pipeline never
the bottleneck of training, read here as >= 10x the training step's rate
(TARGET_VS_TRAINING). Both are measured alone: while training, the pipeline
shares the CPU cores with the training step.
"""

import argparse
import glob
import os
import random
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fcn
import common

TARGET_VS_GENERATOR = 3.0
TARGET_VS_TRAINING = 10.0   # "pipeline rate >> training rate"
DEFAULT_SIZE = (160, 576)


# --------------------------------------------------------------------------- data


def find_kitti(data_dir=None):
    """The `training` folder of a KITTI data_road (checked by the package's reader)."""
    from segcore.data import kitti_road

    candidates = [data_dir] if data_dir else []
    if os.environ.get("SEGCORE_DATASETS"):
        candidates.append(os.path.join(os.environ["SEGCORE_DATASETS"], "kitti_road"))
    candidates.append(os.path.join(common.REPO_ROOT, "..", "shared", "datasets", "kitti_road"))
    for candidate in candidates:
        try:
            return os.path.realpath(kitti_road.training_dir(candidate))
        except Exception:  # DataError: not there; try the next place
            continue
    raise SystemExit(f"no KITTI data_road found in {candidates}; pass --data-dir")


def replicate_kitti(training_dir, pairs, destination):
    """Write `pairs` copies of the road pairs of `training_dir` as destination/data_road.

    Names follow KITTI (`um_000123.png`, `um_road_000123.png`) so the package's
    reader and the seeds' generator both accept the folder. Returns its path.
    """
    from segcore.data import kitti_road

    originals = kitti_road.list_pairs(training_dir, split="training")
    root = os.path.join(destination, "data_road", "training")
    os.makedirs(os.path.join(root, "image_2"))
    os.makedirs(os.path.join(root, "gt_image_2"))
    for index in range(pairs):
        image_path, mask_path = originals[index % len(originals)]
        category = os.path.basename(image_path).split("_")[0]
        shutil.copyfile(image_path, os.path.join(root, "image_2", f"{category}_{index:06d}.png"))
        shutil.copyfile(mask_path,
                        os.path.join(root, "gt_image_2", f"{category}_road_{index:06d}.png"))
    return os.path.join(destination, "data_road")


def warm_page_cache(folder):
    for path in glob.glob(os.path.join(folder, "**", "*.png"), recursive=True):
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


# --------------------------------------------------------------------------- the seeds' generator


def gen_batch_function(data_folder, image_shape):
    """The seeds' `helper.gen_batch_function`, with imageio + PIL for scipy.misc."""
    import imageio.v2 as imageio
    from PIL import Image

    def imresize(array, shape):  # scipy.misc.imresize(array, shape), interp="bilinear"
        return np.array(Image.fromarray(array).resize((shape[1], shape[0]), Image.BILINEAR))

    def get_batches_fn(batch_size):
        image_paths = glob.glob(os.path.join(data_folder, "image_2", "*.png"))
        label_paths = {
            re.sub(r"_(lane|road)_", "_", os.path.basename(path)): path
            for path in glob.glob(os.path.join(data_folder, "gt_image_2", "*_road_*.png"))}
        background_color = np.array([255, 0, 0])
        random.shuffle(image_paths)
        for batch_i in range(0, len(image_paths), batch_size):
            images, gt_images = [], []
            for image_file in image_paths[batch_i:batch_i + batch_size]:
                gt_image_file = label_paths[os.path.basename(image_file)]
                image = imresize(imageio.imread(image_file), image_shape)
                gt_image = imresize(imageio.imread(gt_image_file), image_shape)
                gt_bg = np.all(gt_image == background_color, axis=2)
                gt_bg = gt_bg.reshape(*gt_bg.shape, 1)
                gt_image = np.concatenate((gt_bg, np.invert(gt_bg)), axis=2)
                images.append(image)
                gt_images.append(gt_image)
            yield np.array(images), np.array(gt_images)

    return get_batches_fn


def endless(make_epoch):
    """Batches of successive epochs, forever (`make_epoch()` starts one epoch)."""
    while True:
        yield from make_epoch()


# --------------------------------------------------------------------------- measurements


def time_generator(training_dir, size, batch_size, batches):
    random.seed(0)
    get_batches = gen_batch_function(training_dir, size)
    batches_iter = endless(lambda: get_batches(batch_size))
    # The seeds' generator yields a short last batch; count the images it really gave.
    counts = []

    def step():
        images, _ = next(batches_iter)
        counts.append(len(images))

    timing = common.time_calls(step, batches, warmup=0, items=batch_size)
    timing.items_per_call = sum(counts) / len(counts)
    return timing


def time_pipeline(data_root, size, batch_size, cache, batches, warmup):
    from segcore import data as datasets
    from segcore.data.pipeline import make_pipeline

    raw = datasets.load("kitti_road", data_root, "training")
    pipeline = make_pipeline(raw, batch_size, size=size, training=True, seed=0, cache=cache,
                             repeat=True)
    iterator = iter(pipeline)

    def step():
        images, labels = next(iterator)
        images.numpy(), labels.numpy()

    return common.time_calls(step, batches, warmup=warmup, items=batch_size)


def training_rate(args):
    config = bench_fcn.training_configuration(
        batch_size=args.train_batch_size, size=args.size,
        steps=3 if args.quick else 20, warmup=2 if args.quick else 3)
    result = bench_fcn.run_configuration(config)
    if "error" in result:
        print(f"training-rate probe failed: {result['error']}", file=sys.stderr)
        return None
    return result["train_rate"]


# --------------------------------------------------------------------------- report


def verdict(value, reference, target):
    if value is None or not reference:
        return "n/a"
    achieved = value / reference
    return f"{achieved:.1f}x ({'met' if achieved >= target else 'NOT met'})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 timed epoch per row and a 3-step training probe")
    parser.add_argument("--data-dir", help="KITTI data_road (or its parent) to replicate")
    parser.add_argument("--pairs", type=int, default=64, help="pairs in the temporary copy")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (default 3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("H", "W"))
    parser.add_argument("--train-rate", type=float,
                        help="training images/s to compare with (default: measure FCN-8s)")
    parser.add_argument("--train-batch-size", type=int, default=2,
                        help="batch of the measured training step")
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 3)
    if args.pairs < args.batch_size:
        parser.error(f"--pairs {args.pairs} is fewer than one batch of {args.batch_size}")
    batches_per_epoch = args.pairs // args.batch_size   # training drops the partial batch
    size = tuple(args.size)

    source = find_kitti(args.data_dir)
    print(__doc__.splitlines()[0])
    print(common.machine_summary())
    print(f"{args.pairs} pairs copied from {source}; {size[0]}x{size[1]}, batch {args.batch_size}, "
          f"{epochs} timed epoch(s) of {batches_per_epoch} batches per row\n")

    workdir = tempfile.mkdtemp(prefix="bench_pipeline_", dir="/tmp")
    try:
        data_root = replicate_kitti(source, args.pairs, workdir)
        training_dir = os.path.join(data_root, "training")
        warm_page_cache(data_root)
        timed = epochs * batches_per_epoch
        print("measuring the seeds' generator ...", file=sys.stderr, flush=True)
        generator = time_generator(training_dir, size, args.batch_size,
                                   epochs * -(-args.pairs // args.batch_size))
        print("measuring make_pipeline cache=False ...", file=sys.stderr, flush=True)
        cold = time_pipeline(data_root, size, args.batch_size, False, timed, warmup=1)
        print("measuring make_pipeline cache=True ...", file=sys.stderr, flush=True)
        cached = time_pipeline(data_root, size, args.batch_size, True, timed,
                               warmup=batches_per_epoch)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.train_rate:
        train, train_note = args.train_rate, "given with --train-rate"
    else:
        print("measuring FCN-8s training (fresh process) ...", file=sys.stderr, flush=True)
        train = training_rate(args)
        train_note = f"fcn_tf FCN-8s fp32 train step, batch {args.train_batch_size}, measured"

    rows = [
        ["generator (seeds' gen_batch_function)", generator.rate,
         "imageio + PIL + NumPy, 1 thread"],
        ["pipeline, cache=False (cold: decode every epoch)", cold.rate, "load + make_pipeline"],
        ["pipeline, cache=True (steady state)", cached.rate, "load + make_pipeline"],
        ["training consumption", train, train_note],
    ]
    table = [[name, common.number(rate), common.ratio(rate, generator.rate),
              common.ratio(rate, train), note] for name, rate, note in rows]
    print(common.markdown_table(["source", "images/s", "vs generator", "vs training", "notes"],
                                table))
    print(f"\ntarget pipeline >= {TARGET_VS_GENERATOR:g}x generator: "
          f"cold {verdict(cold.rate, generator.rate, TARGET_VS_GENERATOR)}, "
          f"cached {verdict(cached.rate, generator.rate, TARGET_VS_GENERATOR)}")
    print(f"target pipeline >= {TARGET_VS_TRAINING:g}x training (never the bottleneck): "
          f"cold {verdict(cold.rate, train, TARGET_VS_TRAINING)}, "
          f"cached {verdict(cached.rate, train, TARGET_VS_TRAINING)}")
    if args.quick:
        print("(--quick: one timed epoch per row; provisional figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
