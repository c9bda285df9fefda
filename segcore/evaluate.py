"""Evaluate a SavedModel on a dataset split at the labels' original resolution.

    python -m segcore.evaluate --model runs/fcn8s_voc --dataset voc2012 --data-dir data --split val
    python -m segcore.evaluate --model runs/deeplab_voc/saved_model --dataset voc2012 \\
        --data-dir data --split val --scales 0.5 0.75 1.0 1.25 1.5 1.75 --flip
    python -m segcore.evaluate --model runs/x --dataset cityscapes --data-dir data --split val \\
        --crop 769 769
    python -m segcore.evaluate --model runs/fcn_kitti --dataset kitti_road --data-dir data \\
        --split val --crf
    python -m segcore.evaluate --model runs/isbi_unet --dataset isbi2012 \\
        --data-dir data/isbi2012 --split val

`--model` is a SavedModel written by `segcore.export` (signatures
`serving_default` and `metadata`) or a run directory holding one in
`saved_model/`. Nothing else of the model is needed: the class count, names
and palette come from its `metadata` signature.

Every image is predicted at its own size and scored against its labels at
their original resolution: the SavedModel takes the image as it is (it
resizes internally if its network needs a fixed size, and returns
probabilities at the image's size), test-time scales are resized back to the
image before averaging, and labels are never resized. Pixels labelled with
the dataset's ignore label (VOC's void 255, CamVid's void 11 which its reader
maps to 255, KITTI's black outside-area pixels) are not counted.

Inference options (`InferenceOptions`), all working on any such SavedModel:

* multi-scale and flip (`--scales`, `--flip`): for each scale s the image is
  resized to int((n - 1) * s + 1) pixels per side (bilinear, align_corners,
  research/deeplab's `scale_dimension`, as `deeplab_tf.inference`), rounded
  back to uint8 (the signature's input type), served, the probabilities
  resized back to the image (bilinear, align_corners) and, for the
  left-right flipped copy, flipped back; the probabilities of all variants are
  averaged.
* sliding window (`--crop H W`, `--stride H W`): an image (at each scale)
  larger than the crop is served in overlapping crops, stride 2/3 of the crop
  by default, the last window of a row/column aligned with the image border
  (mmsegmentation's `slide_inference`); each pixel gets the mean of the
  probabilities of the windows covering it. An image no larger than the crop
  is served whole.
* dense CRF (`--crf`): `segcore.crf.dense_crf` on the averaged probabilities
  with the original image, DeepLab's published parameters
  (`--crf-params`, default deeplab_v1_largefov) and `--crf-iterations`.

Output (`--out`, default `eval_<dataset>_<split>` beside the SavedModel):
metrics.json (pixel accuracy, mean accuracy, mean IoU, frequency-weighted IoU,
per-class accuracy and IoU (null for a class absent from both ground truth
and predictions), the confusion matrix (rows ground truth, columns
prediction), the dataset's own scores (`segcore.dataset_scores`): for the
KITTI road task ("not_road", "road") under "road" the devkit's MaxF, AP,
precision, recall, FPR and FNR at the MaxF threshold, for ISBI 2012 ("cell",
"membrane") under "isbi" the challenge's pixel, Rand and warping errors and
cell IoU, as the trainer's metrics.json has them; and under "baseline" the
same scores of the trivial predictors on the same pixels (`segcore.baseline`:
the majority class everywhere, a constant road probability, the map "cell
interior everywhere"), confusion_matrix.png, per_class_iou.png and, with
`--overlays N`, overlay figures. The scores are printed too, each with its
baseline beside it.

Exit status: 0 success, 2 bad input (a one-line message naming the file or
argument).
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from segcore import baseline, dataset_scores
from segcore import data as datasets
from segcore.crf import DEEPLAB_CRF_PARAMS, dense_crf
from segcore.data.images import data_error_from
from segcore.dataset_scores import ROAD_CLASSES
from segcore.errors import ConfigError, DataError, SegmentationError
from segcore.exit_status import exit_status
from segcore.export import find_saved_model, load_serving
from segcore.inference import resize_aligned, scale_dimension
from segcore.metrics import confusion_matrix as confusion_matrix_fn
from segcore.metrics import segmentation_scores
from segcore.options import key_value
from segcore.visualize import overlay, plot_confusion_matrix, plot_per_class_iou, side_by_side

log = logging.getLogger("segcore.evaluate")


# --------------------------------------------------------------------------- the SavedModel


def resolve_saved_model(path):
    """The SavedModel `path` names: `path` itself if it is a SavedModel directory; the
    highest integer version of a TF Serving model base path; for a run directory, its
    `saved_model/` (versioned, or an unversioned SavedModel itself)."""
    found = find_saved_model(path)
    if found is not None:
        return found
    if not os.path.exists(path):
        raise ConfigError(f"--model {path}: no such file or directory")
    raise ConfigError(f"--model {path}: not a SavedModel directory (no saved_model.pb), "
                      "a model base path with version directories (1/, 2/, ...) nor a run "
                      "directory with saved_model/")


class ServingModel:
    """A segcore SavedModel: `probabilities(images)` and the metadata of its classes.

    Attributes: path, num_classes, class_names (tuple of str), palette (uint8
    [C, 3]), ignore_label, is_road (the classes are ("not_road", "road")).
    """

    def __init__(self, path):
        self.path = resolve_saved_model(path)
        try:
            self._loaded = load_serving(self.path)
        except SegmentationError as error:
            raise ConfigError(f"--model {error}") from None
        except Exception as error:  # protobuf / TF raise many types
            first = str(error).strip().split("\n")[0]
            raise ConfigError(
                f"--model {self.path}: cannot load the SavedModel ({first})") from None
        signatures = self._loaded.signatures
        self._serve = signatures["serving_default"]
        self._check_serving_signature()
        if "metadata" not in signatures:
            raise ConfigError(
                f"--model {self.path}: SavedModel has no signature metadata (found "
                f"{', '.join(signatures)}); expected one exported by segcore.export")
        self._read_metadata(signatures["metadata"])

    def _check_serving_signature(self):
        _, inputs = self._serve.structured_input_signature
        spec = inputs.get("images") if isinstance(inputs, dict) else None
        outputs = self._serve.structured_outputs
        ok_input = (spec is not None and spec.dtype == tf.uint8 and spec.shape.rank == 4
                    and spec.shape[-1] in (None, 3) and len(inputs) == 1)
        if not ok_input or not isinstance(outputs, dict) or "probabilities" not in outputs:
            found_in = ", ".join(f"{k} {v.dtype.name} {v.shape}" for k, v in inputs.items())
            found_out = ", ".join(outputs) if isinstance(outputs, dict) else str(outputs)
            raise ConfigError(
                f"--model {self.path}: serving_default takes ({found_in}) "
                f"and returns ({found_out}); "
                "expected images uint8 [batch, height, width, 3] -> probabilities "
                "(a SavedModel exported by segcore.export)")

    def _read_metadata(self, signature):
        try:
            meta = signature()
            self.num_classes = int(meta["num_classes"].numpy())
            self.class_names = tuple(n.decode() for n in meta["class_names"].numpy())
            self.palette = np.asarray(meta["palette"].numpy(), np.int64).reshape(-1, 3)
            self.ignore_label = int(meta["ignore_label"].numpy())
        except (KeyError, ValueError, TypeError, tf.errors.OpError) as error:
            raise ConfigError(f"--model {self.path}: unreadable metadata signature ({error}); "
                              "expected num_classes, class_names, palette, ignore_label") from None
        if len(self.class_names) != self.num_classes or len(self.palette) != self.num_classes:
            raise ConfigError(
                f"--model {self.path}: metadata has num_classes={self.num_classes} but "
                f"{len(self.class_names)} class names and {len(self.palette)} palette colours")
        self.palette = np.clip(self.palette, 0, 255).astype(np.uint8)

    @property
    def is_road(self):
        return self.class_names == ROAD_CLASSES

    def probabilities(self, images):
        """float32 tensor [B, H, W, C] of uint8 images [B, H, W, 3] (serving_default)."""
        probabilities = self._serve(images=tf.convert_to_tensor(images, tf.uint8))["probabilities"]
        if probabilities.shape[-1] != self.num_classes:
            raise ConfigError(f"--model {self.path}: serving_default returned "
                              f"{probabilities.shape[-1]} channels but its metadata says "
                              f"num_classes={self.num_classes}")
        return probabilities

    def describe(self):
        return f"{self.path} ({self.num_classes} classes: {', '.join(self.class_names)})"


# --------------------------------------------------------------------------- inference options


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """Test-time options of `make_predictor` (see the module docstring).

    scales: image scales whose probabilities are averaged ((1.0,) = plain).
    flip: also serve the left-right flipped images.
    crop: (H, W) of sliding windows, None = serve the whole image.
    stride: (H, W) window step; None = 2/3 of the crop (rounded up).
    crf: refine with the dense CRF; crf_iterations mean-field steps with
      `segcore.crf.DEEPLAB_CRF_PARAMS[crf_params]`.
    """

    scales: tuple = (1.0,)
    flip: bool = False
    crop: tuple = None
    stride: tuple = None
    crf: bool = False
    crf_iterations: int = 10
    crf_params: str = "deeplab_v1_largefov"

    def __post_init__(self):
        scales = tuple(float(s) for s in self.scales)
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            raise ConfigError(f"--scales must be positive numbers, got {list(self.scales)}")
        object.__setattr__(self, "scales", scales)
        for flag, value in (("--crop", self.crop), ("--stride", self.stride)):
            if value is not None and (len(value) != 2 or min(value) < 1):
                raise ConfigError(f"{flag} takes two positive integers H W, got {list(value)}")
        if self.stride is not None and self.crop is None:
            raise ConfigError("--stride needs --crop (the sliding-window size)")
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
            stride = self.stride or tuple(max(1, math.ceil(2 * c / 3)) for c in self.crop)
            if any(s > c for s, c in zip(stride, self.crop)):
                raise ConfigError(f"--stride {list(stride)} is larger than --crop "
                                  f"{list(self.crop)}: windows would leave gaps")
            object.__setattr__(self, "stride", tuple(int(v) for v in stride))
        if self.crf_params not in DEEPLAB_CRF_PARAMS:
            raise ConfigError(f"--crf-params must be one of {', '.join(DEEPLAB_CRF_PARAMS)}, "
                              f"got {self.crf_params!r}")
        if self.crf_iterations < 0:
            raise ConfigError(f"--crf-iterations must be >= 0, got {self.crf_iterations}")

    def describe(self):
        parts = [f"scales {list(self.scales)}", "flip" if self.flip else "no flip"]
        if self.crop:
            parts.append(f"sliding window {self.crop[0]}x{self.crop[1]} "
                         f"stride {self.stride[0]}x{self.stride[1]}")
        if self.crf:
            parts.append(f"dense CRF ({self.crf_params}, {self.crf_iterations} iterations)")
        return ", ".join(parts)


def window_starts(length, window, stride):
    """Start offsets of windows of `window` px every `stride` px covering 0..length.

    The last window ends at `length` exactly; a length <= window gives [0].
    """
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return sorted({min(i * stride, length - window) for i in range(count)})


def sliding_window_probabilities(serve, images, crop, stride):
    """Probabilities of `serve` averaged over overlapping crops (eager; numpy accumulation).

    serve: uint8 [B, h, w, 3] -> float32 [B, h, w, C]. An image no larger than
    `crop` is served whole.
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    if height <= crop[0] and width <= crop[1]:
        return serve(images)
    window_h, window_w = min(crop[0], height), min(crop[1], width)
    total, hits = None, np.zeros((height, width, 1), np.float32)
    for y in window_starts(height, window_h, stride[0]):
        for x in window_starts(width, window_w, stride[1]):
            part = np.asarray(serve(images[:, y:y + window_h, x:x + window_w]))
            if total is None:
                total = np.zeros((images.shape[0], height, width, part.shape[-1]), np.float32)
            total[:, y:y + window_h, x:x + window_w] += part
            hits[y:y + window_h, x:x + window_w] += 1.0
    return tf.constant(total / hits)


def make_predictor(serve, options=InferenceOptions()):
    """uint8 images [B, H, W, 3] -> float32 probabilities [B, H, W, C], with `options`.

    serve: uint8 [B, h, w, 3] -> probabilities at h x w (e.g.
    `ServingModel.probabilities`). Runs eagerly (Python loops over scales and
    windows). With the default options it is `serve` itself.
    """

    def serve_one(images):
        if options.crop is None:
            return serve(images)
        return sliding_window_probabilities(serve, images, options.crop, options.stride)

    def predict(images):
        images = tf.convert_to_tensor(images, tf.uint8)
        size = tf.shape(images)[1:3]
        total, count = None, 0
        for scale in options.scales:
            scaled = images
            if scale != 1.0:
                resized = resize_aligned(images, scale_dimension(size, scale))
                scaled = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
            for flipped in (False, True) if options.flip else (False,):
                probabilities = serve_one(tf.reverse(scaled, [2]) if flipped else scaled)
                probabilities = tf.cast(probabilities, tf.float32)
                if flipped:
                    probabilities = tf.reverse(probabilities, [2])
                if scale != 1.0:
                    probabilities = resize_aligned(probabilities, size)
                total = probabilities if total is None else total + probabilities
                count += 1
        probabilities = total if count == 1 else total / float(count)
        if options.crf:
            probabilities = dense_crf(images, probabilities, iterations=options.crf_iterations,
                                      **DEEPLAB_CRF_PARAMS[options.crf_params])
        return probabilities

    return predict


# --------------------------------------------------------------------------- scoring a split


def evaluate_split(predict, dataset, info, num_classes, max_images=None, overlays=0,
                   overlay_dir=None, split="val"):
    """Scores of `predict` (uint8 [1, H, W, 3] -> probabilities) over a raw dataset.

    Each image is predicted at its own resolution (the predict function resizes
    internally if the network needs it); labels are never resized. Returns
    `segcore.metrics.segmentation_scores` of the summed confusion matrix plus
    confusion_matrix, class_names, num_images, the dataset's own scores
    (`segcore.dataset_scores`, accumulated image by image: "road" for KITTI
    road, "isbi" for ISBI 2012) and "baseline": `segcore.baseline.majority_class`
    of the confusion matrix with, under the same key, the baseline of the
    dataset's own scores.
    `overlays` side-by-side PNGs (prediction | ground truth) go to `overlay_dir`, named
    `<split>_000.png`, ...
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    road = tuple(info.class_names) == ROAD_CLASSES
    extra = dataset_scores.for_classes(info.class_names, info.ignore_label)
    if overlays and overlay_dir:
        os.makedirs(overlay_dir, exist_ok=True)
    count = 0
    for index, (image, labels) in enumerate(dataset):
        if max_images is not None and index >= max_images:
            break
        probabilities = predict(image[None])[0]
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        confusion += confusion_matrix_fn(labels, class_ids, num_classes, info.ignore_label).numpy()
        if extra is not None:
            extra.add(probabilities.numpy(), labels.numpy())
        if index < overlays and overlay_dir:
            painted = overlay(image.numpy(), class_ids.numpy(), info.palette,
                              classes=(1,) if road else None)
            truth = overlay(image.numpy(), labels.numpy(), info.palette,
                            classes=(1,) if road else None)
            keras.utils.save_img(os.path.join(overlay_dir, f"{split}_{index:03d}.png"),
                                 side_by_side(painted, truth), scale=False)
        count += 1
    scores = segmentation_scores(confusion)
    scores["confusion_matrix"] = confusion.tolist()
    scores["class_names"] = list(info.class_names)
    scores["num_images"] = count
    scores["baseline"] = baseline.majority_class(confusion, info.class_names)
    own = extra.scores() if extra is not None and count else None
    if own is not None:
        scores[extra.key] = own
        scores["baseline"][extra.key] = extra.baseline()
    return scores


def jsonable(value):
    """`value` with numpy arrays/scalars as lists/numbers and NaN as None (JSON null)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def dataset_info(name, options):
    """The dataset's `DatasetInfo`; a `folder` dataset's from its num_classes option."""
    if name == "folder":
        from segcore.data import folder

        info = folder.make_info(int(options.get("num_classes", 2)))
        return dataclasses.replace(info, ignore_label=int(options.get("ignore_label",
                                                                      info.ignore_label)))
    return datasets.info(name)


def check_classes(model, info):
    """ConfigError when the model's class count differs from the dataset's."""
    if model.num_classes != info.num_classes:
        raise ConfigError(
            f"--model {model.path} has {model.num_classes} classes "
            f"({', '.join(model.class_names)}) but dataset {info.name!r} has {info.num_classes} "
            f"({', '.join(info.class_names)})")
    if tuple(model.class_names) != tuple(info.class_names):
        log.warning("model class names (%s) differ from dataset %s's (%s); scoring by class id",
                    ", ".join(model.class_names), info.name, ", ".join(info.class_names))


def evaluate(model, dataset, data_dir=None, split="val", options=InferenceOptions(),
             out_dir=None, max_images=None, overlays=0, dataset_options=None):
    """Evaluate `model` (a path or `ServingModel`) on a split; write the report to `out_dir`.

    Returns the report dict (as written to metrics.json, NaN as None).
    """
    model = model if isinstance(model, ServingModel) else ServingModel(model)
    dataset_options = dict(dataset_options or {})
    info = dataset_info(dataset, dataset_options)
    check_classes(model, info)
    if info.ignore_label != model.ignore_label:
        log.warning("model ignore_label %d differs from dataset %s's %d; using the dataset's",
                    model.ignore_label, info.name, info.ignore_label)
    if max_images is not None and max_images < 1:
        raise ConfigError(f"--max-images must be >= 1, got {max_images}")
    if out_dir is None:
        out_dir = os.path.join(os.path.dirname(os.path.abspath(model.path)),
                               f"eval_{dataset}_{split}")
    os.makedirs(out_dir, exist_ok=True)
    started = time.time()
    raw = datasets.load(dataset, data_dir, split, **dataset_options)
    predict = make_predictor(model.probabilities, options)
    try:
        scores = evaluate_split(predict, raw, info, info.num_classes, max_images,
                                overlays=overlays, overlay_dir=os.path.join(out_dir, "overlays"),
                                split=split)
    except tf.errors.OpError as error:
        raise data_error_from(error, f"{dataset}/{split}: ") from None
    if scores["num_images"] == 0:
        raise DataError(f"{dataset}/{split}: no images to evaluate")
    seconds = time.time() - started
    report = {
        "model": model.path,
        "dataset": dataset,
        "data_dir": data_dir,
        "split": split,
        "dataset_options": dataset_options,
        "inference": dataclasses.asdict(options),
        "num_pixels": int(np.sum(scores["confusion_matrix"])),
        **scores,
        "seconds": seconds,
        "seconds_per_image": seconds / scores["num_images"],
    }
    report = jsonable(report)
    title = f"{os.path.basename(os.path.dirname(os.path.abspath(model.path)))}: {dataset}/{split}"
    plots = {
        "confusion_matrix_png": plot_confusion_matrix(
            scores["confusion_matrix"], info.class_names,
            os.path.join(out_dir, "confusion_matrix.png"), title=f"{title} (row-normalised)"),
        "per_class_iou_png": plot_per_class_iou(
            scores["per_class_iou"], info.class_names, os.path.join(out_dir, "per_class_iou.png"),
            title=f"{title}: per-class IoU"),
    }
    report["files"] = plots
    report["files"]["metrics_json"] = os.path.join(out_dir, "metrics.json")
    with open(report["files"]["metrics_json"], "w") as f:
        json.dump(report, f, indent=2)
    return report


def format_report(report):
    """The printed summary of an `evaluate` report."""

    def number(value):
        return "n/a" if value is None else f"{value:.4f}"

    majority = report.get("baseline") or {}
    lines = [
        f"{report['dataset']}/{report['split']}: {report['num_images']} image(s), "
        f"{report['num_pixels']:,} labelled pixels at original resolution; model {report['model']}",
    ]
    for label, key in (("pixel accuracy", "pixel_accuracy"), ("mean accuracy", "mean_accuracy"),
                       ("mean IoU", "mean_iou"),
                       ("frequency-weighted IoU", "frequency_weighted_iou")):
        line = f"  {label:22s}  {number(report[key])}"
        if majority:
            line += f"   (majority-class baseline {number(majority.get(key))})"
        lines.append(line)
    if majority:
        lines.append(f"  baseline: {majority['predictor']}")
    lines.append("  per-class IoU:")
    width = max(len(name) for name in report["class_names"])
    for name, value in zip(report["class_names"], report["per_class_iou"]):
        lines.append(f"    {name:{width}s}  {number(value)}"
                     + ("  (absent from ground truth and predictions)" if value is None else ""))
    for key in ("road", "isbi"):
        if report.get(key):
            lines.append("  " + dataset_scores.describe(key, report[key], majority.get(key)))
    lines.append("  wrote " + ", ".join(report["files"].values()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_inference_flags(parser):
    """The test-time flags shared by `segcore.evaluate` and `segcore.predict`."""
    group = parser.add_argument_group("inference")
    group.add_argument("--scales", type=float, nargs="+", default=[1.0],
                       help="average over these image scales (e.g. 0.5 0.75 1.0 1.25 1.5 1.75)")
    group.add_argument("--flip", action="store_true", help="also average left-right flipped images")
    group.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), default=None,
                       help="sliding-window inference with H x W windows")
    group.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"), default=None,
                       help="sliding-window step (default: 2/3 of --crop)")
    group.add_argument("--crf", action="store_true", help="refine with the dense CRF")
    group.add_argument("--crf-iterations", type=int, default=10, help="mean-field iterations")
    group.add_argument("--crf-params", default="deeplab_v1_largefov",
                       help="CRF parameters: " + ", ".join(DEEPLAB_CRF_PARAMS))


def options_from_args(args):
    return InferenceOptions(scales=tuple(args.scales), flip=args.flip,
                            crop=tuple(args.crop) if args.crop else None,
                            stride=tuple(args.stride) if args.stride else None, crf=args.crf,
                            crf_iterations=args.crf_iterations, crf_params=args.crf_params)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m segcore.evaluate", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="SavedModel directory, or a run directory with saved_model/")
    parser.add_argument("--dataset", required=True, help="dataset name (segcore.data.READERS)")
    parser.add_argument("--data-dir", default=None, help="where the dataset's files are")
    parser.add_argument("--split", default="val", help="split to evaluate (default val)")
    parser.add_argument("--option", action="append", type=key_value, default=[],
                        help="dataset reader option KEY=VALUE (Python literal), e.g. skip_bad=True")
    parser.add_argument("--out", default=None,
                        help="output directory "
                             "(default: eval_<dataset>_<split> beside the SavedModel)")
    parser.add_argument("--max-images", type=int, default=None,
                        help="evaluate the first N images only")
    parser.add_argument("--overlays", type=int, default=0,
                        help="write N prediction | ground-truth overlay PNGs")
    add_inference_flags(parser)
    return parser


def main(argv=None):
    prog = "python -m segcore.evaluate"
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def run():
        report = evaluate(args.model, args.dataset, args.data_dir, args.split,
                          options_from_args(args), args.out, args.max_images, args.overlays,
                          dict(args.option))
        print(format_report(report))
        return 0

    return exit_status(prog, run)


if __name__ == "__main__":
    sys.exit(main())
