"""TFDS builder `voc2012_segmentation`: VOC 2012 train/val, and train_aug when SBD is there."""

import os

from segcore.data import sbd, voc2012
from segcore.data.tfds_builders.common import ReaderBuilder
from segcore.errors import DataError


class Voc2012Segmentation(ReaderBuilder):
    """PASCAL VOC 2012 segmentation: 21 classes, 255 = void (class ids, not palette colours)."""

    READER = voc2012
    HOMEPAGE = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Extract VOCtrainval_11-May-2012.tar (python -m segcore.data download voc2012
    --data-dir DIR does it, checking the MD5) and pass the folder holding VOCdevkit/
    as manual_dir. For the 10,582-image train_aug split also extract SBD's
    benchmark.tgz (python -m segcore.data download sbd --data-dir DIR) into the same
    folder (benchmark_RELEASE/ next to VOCdevkit/).
    """

    def _splits(self, manual_dir):
        root = voc2012.voc_root(manual_dir)
        lists = os.path.join(root, "ImageSets", "Segmentation")
        splits = [s for s in ("train", "val") if os.path.isfile(os.path.join(lists, f"{s}.txt"))]
        if not splits:
            raise DataError(f"voc2012: no train.txt or val.txt in {lists}")
        try:
            sbd.find_sbd(manual_dir)
            if "train" in splits and "val" in splits:
                splits.append("train_aug")
        except DataError:
            pass  # no SBD: no train_aug
        return tuple(splits)
