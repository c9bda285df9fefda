"""Segment images with a SavedModel: class-id PNGs, colour overlays, side-by-side figures.

    python -m segcore.predict --model runs/fcn8s_voc photos/ street.jpg --out predictions
    python -m segcore.predict --model runs/deeplab_voc/saved_model photos/ --out predictions \\
        --scales 0.75 1.0 1.25 --flip --crf

`--model` is a SavedModel written by `segcore.export`, a model base path with
version directories (the highest is used), or a run directory with
`saved_model/` (versioned, or an unversioned SavedModel); the class names and palette come
from its `metadata` signature, so nothing else of the package or the training run is needed.
Inputs are image files and/or directories (their PNG/JPEG/BMP/TIFF files, not
recursive), of any size; grey, palette and RGBA images are converted to RGB
(alpha dropped), JPEG EXIF orientation is applied (PIL `exif_transpose`).
The inference options are those of `segcore.evaluate` (multi-scale, flip,
sliding window, dense CRF).

For each image `NAME.ext`, under `--out`:

* labels/NAME.png: the class ids as a palette PNG (mode P, one byte per
  pixel, pixel value = class id, the model's palette), so it opens as a colour
  image and `np.array(Image.open(p))` gives the class ids (also for the
  two-class road task: 0 not road, 1 road);
* overlays/NAME.png: the class colours blended over the image (alpha
  `--alpha`); for the road task road is painted green, as in the KITTI blog posts
  (seeds 000/003, SOURCES.md);
* side_by_side/NAME.png: image | colour class map | overlay.

Two inputs with the same stem (a.jpg, a.png) are written as a_jpg.png and
a_png.png.

Exit status: 0 success; 1 some images could not be read (each named on
stderr, the others are still written); 2 bad input (unusable model, missing
path, a directory without images).
"""

import argparse
import collections
import logging
import os
import sys

import numpy as np
from PIL import Image, ImageOps

from segcore.data.images import IMAGE_EXTENSIONS, list_images
from segcore.errors import ConfigError, DataError, SegmentationError
from segcore.evaluate import (
    InferenceOptions,
    ServingModel,
    add_inference_flags,
    make_predictor,
    options_from_args,
)
from segcore.visualize import colorize, overlay, side_by_side

PROG = "python -m segcore.predict"
OUTPUT_DIRS = ("labels", "overlays", "side_by_side")


def list_inputs(paths):
    """Image paths of `paths` (files as given, directories' image files sorted by name)."""
    if not paths:
        raise ConfigError("no input images given (IMAGES_OR_DIR ...)")
    found = []
    for path in paths:
        if os.path.isdir(path):
            names = list_images(path)
            if not names:
                raise DataError(f"{path}: directory has no images "
                                f"({', '.join(IMAGE_EXTENSIONS)})")
            found += [os.path.join(path, name) for name in names]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    return found


def output_names(paths):
    """One output stem per input path: its stem, or stem_ext when stems collide."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    clashes = collections.Counter(stems)
    names, used = [], set()
    for path, stem in zip(paths, stems):
        name = stem
        if clashes[stem] > 1:
            name = os.path.basename(path).replace(".", "_")
        base, number = name, 1
        while name in used:          # the same file name twice (from two directories)
            number += 1
            name = f"{base}_{number}"
        used.add(name)
        names.append(name)
    return names


def read_rgb(path):
    """uint8 [H, W, 3] of an image file (EXIF orientation applied, grey/RGBA -> RGB)."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                grey = (np.asarray(image, np.uint16) >> 8).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=-1)
            return np.asarray(image.convert("RGB"), np.uint8)
    except Exception as error:  # PIL raises many types for bad files
        reason = str(error).replace(f"'{path}'", "").strip() or type(error).__name__
        raise DataError(f"{path}: cannot decode image ({reason})") from None


def palette_png(class_ids, palette):
    """PIL palette image (mode P) whose pixel values are `class_ids` (uint8 [H, W])."""
    class_ids = np.asarray(class_ids)
    if class_ids.size and (class_ids.min() < 0 or class_ids.max() > 255):
        raise ConfigError("class ids must be 0..255 to be written as a palette PNG")
    image = Image.fromarray(class_ids.astype(np.uint8))    # mode "L"
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)[:256]
    image.putpalette(table.ravel().tolist())     # "L" -> "P", pixel values unchanged
    return image


def predict_images(model, paths, out_dir, options=InferenceOptions(), alpha=0.5, echo=print):
    """Segment `paths` with `model` (path or `ServingModel`); write the outputs under `out_dir`.

    Returns (written, failures): a list of (input path, label PNG path) and a
    list of one-line messages for images that could not be read.
    """
    model = model if isinstance(model, ServingModel) else ServingModel(model)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
    predict = make_predictor(model.probabilities, options)
    for sub in OUTPUT_DIRS:
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    written, failures = [], []
    for path, name in zip(paths, output_names(paths)):
        try:
            image = read_rgb(path)
        except DataError as error:
            failures.append(str(error))
            echo(f"{PROG}: error: {error}", file=sys.stderr)
            continue
        probabilities = predict(image[None])[0]
        class_ids = np.argmax(np.asarray(probabilities), axis=-1).astype(np.uint8)
        label_path = os.path.join(out_dir, "labels", f"{name}.png")
        palette_png(class_ids, model.palette).save(label_path)
        painted = overlay(image, class_ids, model.palette, alpha=alpha,
                          classes=(1,) if model.is_road else None)
        Image.fromarray(painted).save(os.path.join(out_dir, "overlays", f"{name}.png"))
        colours = colorize(class_ids, model.palette, ignore_label=model.ignore_label)
        Image.fromarray(side_by_side(image, colours, painted)).save(
            os.path.join(out_dir, "side_by_side", f"{name}.png"))
        written.append((path, label_path))
        echo(f"{path} ({image.shape[1]}x{image.shape[0]}): {_class_summary(class_ids, model)}")
    return written, failures


def _class_summary(class_ids, model, top=3):
    counts = np.bincount(class_ids.ravel(), minlength=model.num_classes)
    order = np.argsort(-counts, kind="stable")[:top]
    return ", ".join(f"{model.class_names[i]} {100.0 * counts[i] / class_ids.size:.1f}%"
                     for i in order if counts[i])


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="SavedModel directory, model base path (highest version), or a "
                             "run directory with saved_model/")
    parser.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIR",
                        help="image files and/or directories of images")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0..1)")
    add_inference_flags(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def echo(text, file=None):
        print(text, file=file or sys.stdout, flush=True)

    try:
        paths = list_inputs(args.inputs)
        written, failures = predict_images(args.model, paths, args.out, options_from_args(args),
                                           args.alpha, echo)
    except SegmentationError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    folders = os.path.join(args.out, "{" + ",".join(OUTPUT_DIRS) + "}")
    print(f"wrote {len(written)} image(s) to {folders}")
    if failures:
        print(f"{PROG}: error: {len(failures)} of {len(paths)} image(s) could not be read",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
