"""ISBI 2012 EM segmentation challenge: neuronal membranes in Drosophila ssTEM
(Cardona et al. 2010; Arganda-Carreras et al. 2015), the U-Net paper's data.

Two layouts are read (`layout="auto"` picks the one present):

* "stacks", the challenge's original multi-page TIFFs:
      train-volume.tif, train-labels.tif   (30 pages of 512x512 8-bit grey)
      test-volume.tif                      (30 unlabelled pages)
* "slices", one PNG per slice (as in zhixuhao/unet's data/membrane):
      train/image/<i>.png, train/label/<i>.png, test/<i>.png

Labels store membrane as 0 and cell interior as 255. By default membrane is
class 1 (the foreground, as the U-Net paper's weight maps and the challenge's
metrics treat it) and interior class 0; `membrane_class=0` keeps the stored
polarity (membrane 0, interior 1). Any other label value is an error. Images
are grey and come out as 3 equal channels.

Splits, by slice number (so the same slices whatever the layout):
  "val": slices 20-23 (4), "train": every other labelled slice (26 of the 30;
  0-19 when only the 24 slices 0-23 are present), "all": every labelled slice,
  "test": the 30 challenge test slices, with all-ignore labels (the challenge
  keeps their labels; use it for prediction only).
"""

import os

from segcore.data import images
from segcore.data.info import DatasetInfo
from segcore.errors import DataError

INFO = DatasetInfo(
    name="isbi2012",
    num_classes=2,
    class_names=("cell", "membrane"),
    palette=((255, 255, 255), (0, 0, 0)),
    splits={"all": 30, "train": 26, "val": 4, "test": 30},
    citation="Arganda-Carreras et al., Crowdsourcing the creation of image segmentation "
             "algorithms for connectomics, Front. Neuroanat. 2015; Cardona et al., PLoS Biol. 2010",
)

VAL_SLICES = (20, 21, 22, 23)
STACKS = ("train-volume.tif", "train-labels.tif", "test-volume.tif")


def label_format(membrane_class=1):
    if membrane_class not in (0, 1):
        raise DataError(f"isbi2012: membrane_class must be 0 or 1, got {membrane_class!r}")
    return images.MaskFormat(
        dataset="isbi2012",
        kind="index",
        table=images.label_table({0: membrane_class, 255: 1 - membrane_class}, ignore_values=()),
        expected="ISBI labels 0 (membrane) or 255 (cell interior)",
    )


def detect_layout(data_dir):
    if os.path.isfile(os.path.join(data_dir, STACKS[0])):
        return "stacks"
    if os.path.isdir(os.path.join(data_dir, "train", "image")):
        return "slices"
    raise DataError(f"isbi2012: neither {STACKS[0]} nor train/image/ in {data_dir} (expected the "
                    "challenge's TIFF stacks or one PNG per slice)")


def _selected(numbers, split, val_slices):
    if split == "val":
        return [n for n in numbers if n in val_slices]
    if split == "train":
        return [n for n in numbers if n not in val_slices]
    return list(numbers)


def _slice_pairs(root, split, val_slices, problems):
    if split == "test":
        test_dir = images.require_dir(os.path.join(root, "test"), "isbi2012 test slices")
        names = images.list_images(test_dir)
        if not names:
            problems.append(f"isbi2012: no images in {test_dir}")
        numbered = []
        for name in names:
            stem = os.path.splitext(name)[0]
            if stem.isdigit():
                numbered.append((int(stem), (os.path.join(test_dir, name), None)))
            else:
                problems.append(f"isbi2012: {os.path.join(test_dir, name)}: slice file names "
                                "must be slice numbers")
        return [pair for _, pair in sorted(numbered)]
    image_dir = images.require_dir(os.path.join(root, "train", "image"), "isbi2012 slices")
    label_dir = images.require_dir(os.path.join(root, "train", "label"), "isbi2012 labels")
    by_number = {}
    for image, label in images.pair_by_stem("isbi2012", image_dir, label_dir, problems):
        stem = os.path.splitext(os.path.basename(image))[0]
        if stem.isdigit():
            by_number[int(stem)] = (image, label)
        else:
            problems.append(f"isbi2012: {image}: slice file names must be slice numbers")
    return [by_number[n] for n in _selected(sorted(by_number), split, val_slices)]


def _stack_pairs(root, split, val_slices, problems):
    volume = os.path.join(root, STACKS[2] if split == "test" else STACKS[0])
    labels = None if split == "test" else os.path.join(root, STACKS[1])
    try:
        frames = images.read_header(volume).frames
        if labels is not None:
            label_frames = images.read_header(labels).frames
            if label_frames != frames:
                problems.append(f"isbi2012: {volume} has {frames} pages but {labels} has "
                                f"{label_frames}")
                return []
    except DataError as error:
        problems.append(str(error))
        return []
    numbers = range(frames) if split == "test" else _selected(range(frames), split, val_slices)
    return [(volume, labels, n, n) for n in numbers]


def index(data_dir, split="train", membrane_class=1, val_slices=VAL_SLICES, layout="auto"):
    if split not in INFO.splits:
        raise DataError(f"isbi2012: unknown split {split!r}; expected one of {sorted(INFO.splits)}")
    if layout == "auto":
        layout = detect_layout(data_dir)
    if layout not in ("slices", "stacks"):
        raise DataError(f"isbi2012: layout must be 'auto', 'slices' or 'stacks', got {layout!r}")
    problems = []
    collect = _slice_pairs if layout == "slices" else _stack_pairs
    pairs = collect(data_dir, split, tuple(val_slices), problems)
    return images.index_pairs(label_format(membrane_class), pairs, problems,
                              description=f"split {split!r} of {data_dir} ({layout})")


def read(data_dir, split="train", membrane_class=1, val_slices=VAL_SLICES, layout="auto",
         skip_bad=False):
    """tf.data.Dataset of (image uint8 [512, 512, 3], labels uint8 [512, 512]) in slice order."""
    return images.pairs_dataset(index(data_dir, split, membrane_class, val_slices, layout),
                                skip_bad, "isbi2012")
