"""PASCAL VOC 2012 segmentation, original layout (Everingham et al., IJCV 2010).

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png        palette PNG (mode P)
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

`data_dir` may be the VOC2012 folder, VOCdevkit, or the folder holding
VOCdevkit (where `VOCtrainval_11-May-2012.tar` was extracted).

Labels. `SegmentationClass` PNGs are palette images whose pixel VALUES are the
class ids 0..20 (255 = the void band around objects, ignored); the colours are
only the VOC colour map. Decoding them with `tf.io.decode_png` gives colours,
not ids (libpng expands palettes; TF has no option to return the indices): the
classic bug. This reader reads the indices with PIL (`np.array(Image.open(p))`)
in a `tf.numpy_function`, after checking from the header at indexing time that
each mask is a palette (P) or grey (L) image: an RGB mask (a colour rendering)
is rejected, naming the file, instead of being misread. (Mapping RGB back
through the palette in the graph is also exact for VOC's one-to-one palette,
but measured ~6x slower than PIL, whose PNG inflate releases the GIL.)
Grey 8-bit index masks (the widely used `SegmentationClassAug` folder) are read
too: pass `mask_dir="SegmentationClassAug"`.

Splits: train 1,464, val 1,449, trainval 2,913 (the official lists), and
train_aug 10,582 with SBD (see `segcore.data.sbd` for the rule).
"""

import os

from segcore.data import images
from segcore.data.info import DatasetInfo, pascal_palette
from segcore.errors import DataError

CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)

INFO = DatasetInfo(
    name="voc2012",
    num_classes=21,
    class_names=CLASS_NAMES,
    palette=pascal_palette(21),
    splits={"train": 1464, "val": 1449, "trainval": 2913, "train_aug": 10582},
    citation="Everingham, Van Gool, Williams, Winn, Zisserman, The PASCAL Visual Object "
             "Classes (VOC) Challenge, IJCV 2010; train_aug: Hariharan et al., Semantic "
             "Contours from Inverse Detectors, ICCV 2011",
)

FORMAT = images.MaskFormat(
    dataset="voc2012",
    kind="index",
    table=images.label_table({i: i for i in range(21)}),
    expected="VOC class ids 0..20 or the void label 255",
)

LIST_SPLITS = ("train", "val", "trainval")
CHECK_SPLITS = ("train", "val")


def voc_root(data_dir):
    """The VOC2012 folder under `data_dir` (itself, VOC2012/, or VOCdevkit/VOC2012/)."""
    for candidate in (data_dir, os.path.join(data_dir, "VOC2012"),
                      os.path.join(data_dir, "VOCdevkit", "VOC2012")):
        if os.path.isdir(os.path.join(candidate, "JPEGImages")) and os.path.isdir(
                os.path.join(candidate, "ImageSets", "Segmentation")):
            return candidate
    raise DataError(
        f"voc2012: no JPEGImages and ImageSets/Segmentation under {data_dir} (expected "
        "VOCdevkit/VOC2012 from VOCtrainval_11-May-2012.tar; "
        "python -m segcore.data download voc2012 --data-dir DIR)"
    )


def read_list(path):
    """Ids of a split list file, in file order; DataError naming the file if it is missing."""
    try:
        with open(path) as f:
            ids = [line.split()[0] for line in f if line.strip()]
    except FileNotFoundError:
        raise DataError(f"split list not found: {path}") from None
    if not ids:
        raise DataError(f"split list is empty: {path}")
    return ids


def split_ids(root, split):
    return read_list(os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt"))


def voc_pairs(root, ids, problems, mask_dir="SegmentationClass", list_name="the split list"):
    """(image, mask) paths of `ids`; ids whose image or mask is missing go to `problems`."""
    pairs, no_image, no_mask = [], [], []
    for item in ids:
        image = os.path.join(root, "JPEGImages", f"{item}.jpg")
        mask = os.path.join(root, mask_dir, f"{item}.png")
        if not os.path.isfile(image):
            no_image.append(item)
        elif not os.path.isfile(mask):
            no_mask.append(item)
        else:
            pairs.append((image, mask))
    if no_image:
        problems.append(f"voc2012: {len(no_image)} id(s) of {list_name} without an image in "
                        f"{os.path.join(root, 'JPEGImages')}: {', '.join(no_image[:20])}")
    if no_mask:
        problems.append(f"voc2012: {len(no_mask)} id(s) of {list_name} without a mask in "
                        f"{os.path.join(root, mask_dir)}: {', '.join(no_mask[:20])}")
    return pairs


def index(data_dir, split="train", sbd_dir=None, mask_dir="SegmentationClass"):
    """`images.Index` of a split: checked pairs and every problem found."""
    if split not in INFO.splits:
        raise DataError(f"voc2012: unknown split {split!r}; expected one of {sorted(INFO.splits)}")
    if split == "train_aug":
        from segcore.data import sbd

        return sbd.train_aug_index(data_dir, sbd_dir, mask_dir=mask_dir)
    root = voc_root(data_dir)
    list_path = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    problems = []
    pairs = voc_pairs(root, read_list(list_path), problems, mask_dir, list_path)
    return images.index_pairs(FORMAT, pairs, problems, description=f"split {split!r} of {root}")


def read(data_dir, split="train", sbd_dir=None, mask_dir="SegmentationClass", skip_bad=False):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]), original size.

    Options: `sbd_dir` (train_aug: the SBD `benchmark_RELEASE` folder, found
    next to VOCdevkit when not given), `mask_dir` (e.g. "SegmentationClassAug"),
    `skip_bad` (leave out and log bad pairs instead of failing).
    """
    return images.pairs_dataset(index(data_dir, split, sbd_dir, mask_dir), skip_bad, "voc2012")
