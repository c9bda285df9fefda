"""TFDS builder `coco_voc`: MS-COCO restricted to the 20 VOC classes, train/val
(torchvision's rules)."""

import os

from segcore.data import coco_voc
from segcore.data.tfds_builders.common import ReaderBuilder


class CocoVoc(ReaderBuilder):
    """COCO images of the 20 VOC classes; masks rendered once here with pycocotools
    (overlapping instances 255, crowd regions as their class, train images with a
    total 20-class annotation area <= 1,000 left out; `segcore.data.coco_voc`)."""

    READER = coco_voc
    HOMEPAGE = "https://cocodataset.org/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download and extract COCO 2017 (python -m segcore.data download coco_voc
    --data-dir DIR does it, checking the SHA-256 of train2017.zip, val2017.zip and
    annotations_trainval2017.zip) and pass the folder holding annotations/ and
    train2017/, val2017/ (DIR/coco) as manual_dir. 2014 names
    (instances_train2014.json, train2014/) are read too.
    """

    def _splits(self, manual_dir):
        return coco_voc.available_splits(manual_dir)

    def _pairs(self, manual_dir, split):
        index = coco_voc.index(manual_dir, split)
        coco_voc.raise_problems(index)
        keys = [os.path.relpath(entry.path, manual_dir) for entry in index.entries]
        return keys, coco_voc.dataset_of(index)
