"""TFDS builders (manual download) for KITTI Road, VOC 2012 segmentation (+SBD), ISBI 2012
and COCO-VOC.

They list and decode with the plain-file readers (`segcore.data.kitti_road`,
`voc2012`/`sbd`, `isbi2012`, `coco_voc`), so a TFDS build holds exactly what
`segcore.data.load` returns: `image` uint8 [H, W, 3], `segmentation_mask`
uint8 [H, W, 1] of class ids (255 = ignore), and `file_name` (the pair's key).
Importing this package registers them with TFDS:

    import segcore.data.tfds_builders  # noqa: F401
    builder = tfds.builder("voc2012_segmentation", data_dir=...)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="path/to/VOCdevkit"))
    pairs = as_pairs(builder.as_dataset(split="train"))
"""

from segcore.data.tfds_builders.coco_voc import CocoVoc
from segcore.data.tfds_builders.common import as_pairs
from segcore.data.tfds_builders.isbi2012 import Isbi2012
from segcore.data.tfds_builders.kitti_road import KittiRoad
from segcore.data.tfds_builders.voc2012 import Voc2012Segmentation

__all__ = ["CocoVoc", "Isbi2012", "KittiRoad", "Voc2012Segmentation", "as_pairs"]
