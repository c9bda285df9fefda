"""TFDS builder `kitti_road`: KITTI Road training pairs, train/val as `segcore.data.kitti_road`."""

import os

from segcore.data import kitti_road
from segcore.data.tfds_builders.common import ReaderBuilder


class KittiRoad(ReaderBuilder):
    """KITTI Road (road vs not road; outside the evaluated area = 255)."""

    READER = kitti_road
    HOMEPAGE = "https://www.cvlibs.net/datasets/kitti/eval_road.php"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Register at https://www.cvlibs.net/datasets/kitti/eval_road.php, download
    data_road.zip and unzip it; pass the folder holding data_road/ (or data_road/
    itself) as manual_dir. Only the training half (289 pairs) has ground truth:
    it is split into train (260) and val (29, every 10th frame per category).
    """

    def _splits(self, manual_dir):
        return ("train", "val")

    def _pairs(self, manual_dir, split):
        pairs = kitti_road.list_pairs(manual_dir, split)
        keys = [os.path.relpath(image, manual_dir) for image, _ in pairs]
        return keys, kitti_road.read(manual_dir, split)

