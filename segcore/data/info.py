"""One descriptor per dataset: splits and sizes, classes, ignore label, palette."""

import dataclasses

IGNORE_LABEL = 255


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Facts about a dataset, in one place (research/deeplab `data_generator.py` style).

    `splits` maps split name -> number of pairs in the full published dataset
    (None where the size depends on the data at hand).
    `palette` has one RGB triple per class, for colour masks and overlays.
    """

    name: str
    num_classes: int
    class_names: tuple
    palette: tuple
    splits: dict
    ignore_label: int = IGNORE_LABEL
    citation: str = ""

    def __post_init__(self):
        if len(self.class_names) != self.num_classes or len(self.palette) != self.num_classes:
            raise ValueError(
                f"{self.name}: class_names and palette need {self.num_classes} entries")


def pascal_palette(num_classes=256):
    """The PASCAL VOC colour map (bit-interleaved), as in the VOC devkit `labelcolormap`."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.append((r, g, b))
    return tuple(palette)
