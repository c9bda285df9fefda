"""Time `segcore.crf.dense_crf` per image on this CPU: 21 classes, 10 iterations.

    python benchmarks/bench_crf.py [--image photo.jpg] [--repeats 3]

The lattice size (and so the time) depends on the image's colours, so a real
photo is used when one is available: `--image`, else the first JPEG under
$SEGCORE_DATASETS/voc2012/JPEGImages, else a synthetic image of smooth colour
blobs with noise. Each size is resized from that image. Times are wall-clock
medians of a `tf.function` with a [None, None, None, 3] signature after one
warm-up call; "build" is the lattice construction alone (once per image), the
rest is the 10 mean-field iterations. Other processes on the machine slow it
down: the load average is printed with the table.
"""

import argparse
import glob
import os
import statistics
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from segcore import crf

SIZES = [(256, 256), (375, 500)]  # (height, width)
CLASSES = 21
ITERATIONS = 10


def load_image(path):
    if path is None:
        root = os.environ.get("SEGCORE_DATASETS", "")
        pattern = os.path.join(root, "voc2012", "JPEGImages", "*.jpg")
        found = sorted(glob.glob(pattern)) if root else []
        path = found[0] if found else None
    if path is None:
        rng = np.random.default_rng(0)
        blobs = tf.image.resize(rng.uniform(0, 255, (1, 6, 8, 3)), (375, 500), "bicubic")
        image = tf.clip_by_value(blobs + rng.normal(0, 2, (1, 375, 500, 3)), 0, 255)
        return tf.cast(image, tf.float32), "synthetic blobs + noise"
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.cast(image[None], tf.float32), path


def median_time(fn, *args, repeats):
    fn(*args)  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="a photo to resize to each size")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    photo, source = load_image(args.image)

    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    logits_spec = tf.TensorSpec([None, None, None, CLASSES], tf.float32)
    refine = tf.function(
        lambda image, logits: crf.dense_crf(image, logits, ITERATIONS, from_logits=True),
        input_signature=[image_spec, logits_spec])
    build = tf.function(lambda image: crf._Lattice(crf._bilateral_features(image, 121.0, 5.0)).m,
                        input_signature=[image_spec])

    print(f"image: {source}; {CLASSES} classes, {ITERATIONS} iterations, "
          "DeepLab-LargeFOV parameters")
    print(f"CPU threads: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'size (HxW)':>12} {'lattice pts':>12} {'build s':>8} {'total s':>8} "
          f"{'s/iteration':>12}")
    rng = np.random.default_rng(0)
    for height, width in SIZES:
        image = tf.image.resize(photo, (height, width), antialias=True)
        logits = tf.constant(rng.normal(0, 1, (1, height, width, CLASSES)).astype(np.float32))
        points = int(build(image))
        build_s = median_time(build, image, repeats=args.repeats)
        total_s = median_time(refine, image, logits, repeats=args.repeats)
        print(f"{f'{height}x{width}':>12} {points:>12} {build_s:>8.2f} {total_s:>8.2f} "
              f"{(total_s - build_s) / ITERATIONS:>12.3f}")


if __name__ == "__main__":
    main()
