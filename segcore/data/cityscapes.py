"""Cityscapes fine annotations (Cordts et al., CVPR 2016), original layout:

    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

(`leftImg8bit_trainvaltest.zip` and `gtFine_trainvaltest.zip`, extracted into
one folder.) The `labelIds` masks hold the 34 label ids 0..33; they are mapped
to the 19 training classes with the official table of cityscapesScripts
`helpers/labels.py` (every label whose trainId is 255 becomes the ignore
label). `label_source="labelTrainIds"` reads the `*_gtFine_labelTrainIds.png`
files that cityscapesScripts' `createTrainIdLabelImgs` writes instead. The test
split's public masks carry no labels (everything is ignored at evaluation).
"""

import os

from segcore.data import images
from segcore.data.info import IGNORE_LABEL, DatasetInfo
from segcore.errors import DataError

# (name, id, trainId, colour) of cityscapesScripts helpers/labels.py, ids 0..33
# (license plate, id -1, never appears in the masks).
LABELS = (
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
)

_TRAIN = sorted((train_id, name, colour) for name, _, train_id, colour in LABELS if train_id != 255)

INFO = DatasetInfo(
    name="cityscapes",
    num_classes=19,
    class_names=tuple(name for _, name, _ in _TRAIN),
    palette=tuple(colour for _, _, colour in _TRAIN),
    splits={"train": 2975, "val": 500, "test": 1525},
    citation="Cordts et al., The Cityscapes Dataset for Semantic Urban Scene Understanding, "
             "CVPR 2016",
)

LABEL_ID_TO_TRAIN_ID = {label_id: train_id for _, label_id, train_id, _ in LABELS}

FORMATS = {
    "labelIds": images.MaskFormat(
        dataset="cityscapes", kind="index",
        table=images.label_table(LABEL_ID_TO_TRAIN_ID, ignore_values=()),
        expected="Cityscapes labelIds 0..33"),
    "labelTrainIds": images.MaskFormat(
        dataset="cityscapes", kind="index",
        table=images.label_table({i: i for i in range(19)}),
        expected=f"Cityscapes trainIds 0..18 or {IGNORE_LABEL}"),
}

IMAGE_SUFFIX = "_leftImg8bit.png"


def cityscapes_root(data_dir):
    if os.path.isdir(os.path.join(data_dir, "leftImg8bit")) and os.path.isdir(
            os.path.join(data_dir, "gtFine")):
        return data_dir
    raise DataError(f"cityscapes: no leftImg8bit/ and gtFine/ under {data_dir} (extract "
                    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip into one folder)")


def _key(suffix):
    return lambda name: name[:-len(suffix)] if name.endswith(suffix) else None


def index(data_dir, split="train", label_source="labelIds"):
    if split not in INFO.splits:
        raise DataError(
            f"cityscapes: unknown split {split!r}; expected one of {sorted(INFO.splits)}")
    if label_source not in FORMATS:
        raise DataError(f"cityscapes: label_source must be one of {sorted(FORMATS)}, "
                        f"got {label_source!r}")
    root = cityscapes_root(data_dir)
    image_root = images.require_dir(os.path.join(root, "leftImg8bit", split), f"cityscapes {split}")
    mask_root = images.require_dir(os.path.join(root, "gtFine", split),
                                   f"cityscapes {split} gtFine")
    cities = sorted(d for d in os.listdir(image_root)
                    if os.path.isdir(os.path.join(image_root, d)))
    mask_cities = sorted(d for d in os.listdir(mask_root)
                         if os.path.isdir(os.path.join(mask_root, d)))
    problems, pairs = [], []
    if not cities:
        problems.append(f"cityscapes: no city folders in {image_root}")
    for city in sorted(set(mask_cities) - set(cities)):
        problems.append(
            f"cityscapes: {os.path.join(mask_root, city)} has no images in {image_root}")
    mask_suffix = f"_gtFine_{label_source}.png"
    for city in cities:
        mask_dir = os.path.join(mask_root, city)
        if not os.path.isdir(mask_dir):
            problems.append(f"cityscapes: no gtFine folder {mask_dir} for the images of "
                            f"{os.path.join(image_root, city)}")
            continue
        pairs += images.pair_by_stem("cityscapes", os.path.join(image_root, city), mask_dir,
                                     problems, _key(IMAGE_SUFFIX), _key(mask_suffix))
    return images.index_pairs(FORMATS[label_source], pairs, problems,
                              description=f"split {split!r} of {root}")


def read(data_dir, split="train", label_source="labelIds", skip_bad=False):
    """tf.data.Dataset of (image uint8 [1024, 2048, 3], trainIds uint8 [1024, 2048])."""
    return images.pairs_dataset(index(data_dir, split, label_source), skip_bad, "cityscapes")
