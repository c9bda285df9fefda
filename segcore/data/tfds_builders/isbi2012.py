"""TFDS builder `isbi2012`: ISBI 2012 membranes, train/val (and the unlabelled test slices)."""

import os

from segcore.data import isbi2012
from segcore.data.tfds_builders.common import ReaderBuilder


class Isbi2012(ReaderBuilder):
    """ISBI 2012 EM membranes: membrane = 1, cell interior = 0; test masks are all 255."""

    READER = isbi2012
    HOMEPAGE = "https://imagej.net/events/isbi-2012-segmentation-challenge"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Pass as manual_dir a folder holding either the challenge's TIFF stacks
    (train-volume.tif, train-labels.tif, optionally test-volume.tif) or one PNG
    per slice (train/image/<i>.png, train/label/<i>.png, optionally test/<i>.png).
    Splits: val = slices 20-23, train = the other labelled slices, test = the
    unlabelled challenge slices (masks all 255).
    """

    def _splits(self, manual_dir):
        has_test = (os.path.isfile(os.path.join(manual_dir, isbi2012.STACKS[2]))
                    if isbi2012.detect_layout(manual_dir) == "stacks"
                    else os.path.isdir(os.path.join(manual_dir, "test")))
        return ("train", "val", "test") if has_test else ("train", "val")
