"""Any dataset laid out as a folder of images and a folder of masks.

    DATA_DIR/images/<stem>.<ext>         DATA_DIR/masks/<stem><mask_suffix>.png   (split "all")
    DATA_DIR/<split>/images/...          DATA_DIR/<split>/masks/...               (other splits)

Images and masks pair by file stem (`mask_suffix`, e.g. "_mask", is removed
from mask stems first). Masks are either
* class-index masks (default): 8-bit grey or palette PNGs whose pixel values
  are class ids 0..num_classes-1, or `ignore_label`; or
* colour-coded RGB masks, with `colour_map={(r, g, b): class_id, ...}` (keys may
  also be "r,g,b" or "#rrggbb" strings; map a colour to `ignore_label` to
  ignore it). Any other colour is an error naming the file and the colour.

`INFO` describes the default (two classes, background/foreground); `make_info`
builds the descriptor of a given class list.
"""

import os

from segcore.data import images
from segcore.data.info import IGNORE_LABEL, DatasetInfo, pascal_palette
from segcore.errors import ConfigError, DataError

INFO = DatasetInfo(
    name="folder",
    num_classes=2,
    class_names=("background", "foreground"),
    palette=((0, 0, 0), (255, 255, 255)),
    splits={"all": None},
)


def make_info(num_classes, class_names=None, colour_map=None):
    """DatasetInfo of a folder dataset with `num_classes` classes."""
    names = tuple(class_names) if class_names else tuple(f"class_{i}" for i in range(num_classes))
    palette = list(pascal_palette(num_classes))
    for colour, cls in (colour_map or {}).items():
        if cls < num_classes:
            palette[cls] = colour
    return DatasetInfo("folder", num_classes, names, tuple(palette), {"all": None})


def parse_colour(key):
    """(r, g, b) from a tuple/list, "r,g,b" or "#rrggbb"."""
    try:
        if isinstance(key, str):
            text = key.strip()
            if text.startswith("#") and len(text) == 7:
                colour = tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
            else:
                colour = tuple(int(part) for part in text.strip("()").split(","))
        else:
            colour = tuple(int(part) for part in key)
    except (TypeError, ValueError):
        colour = ()
    if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
        raise ConfigError(f"folder: colour_map key {key!r} is not an RGB colour "
                          "((r, g, b), 'r,g,b' or '#rrggbb')")
    return colour


def make_format(num_classes=2, colour_map=None, ignore_label=IGNORE_LABEL):
    if colour_map:
        colours = {parse_colour(k): int(v) for k, v in dict(colour_map).items()}
        bad = sorted(v for v in colours.values() if v >= num_classes and v != ignore_label)
        if bad:
            raise ConfigError(f"folder: colour_map classes {bad} are >= num_classes={num_classes} "
                              f"and not the ignore label {ignore_label}")
        return images.MaskFormat(dataset="folder", kind="colour", colours=colours,
                                 ignore_label=ignore_label)
    if not 1 <= num_classes <= 256:
        raise ConfigError(f"folder: num_classes must be 1..256, got {num_classes}")
    return images.MaskFormat(
        dataset="folder", kind="index",
        table=images.label_table({i: i for i in range(num_classes)}, (ignore_label,), ignore_label),
        expected=f"class ids 0..{num_classes - 1} or the ignore label {ignore_label}",
        ignore_label=ignore_label,
    )


def available_splits(data_dir, image_dir="images", **_):
    """("all",) for a flat folder, else the sub-folders holding `image_dir`, sorted."""
    if os.path.isdir(os.path.join(data_dir, image_dir)) or not os.path.isdir(data_dir):
        return ("all",)
    found = sorted(d for d in os.listdir(data_dir)
                   if os.path.isdir(os.path.join(data_dir, d, image_dir)))
    return tuple(found) or ("all",)


def _dirs(data_dir, split, image_dir, mask_dir):
    if os.path.isdir(os.path.join(data_dir, split, image_dir)):
        return os.path.join(data_dir, split, image_dir), os.path.join(data_dir, split, mask_dir)
    if split == "all":
        return os.path.join(data_dir, image_dir), os.path.join(data_dir, mask_dir)
    raise DataError(f"folder: no {os.path.join(data_dir, split, image_dir)} for split {split!r} "
                    f"(split 'all' reads {os.path.join(data_dir, image_dir)})")


def index(data_dir, split="all", image_dir="images", mask_dir="masks", mask_suffix="",
          num_classes=2, colour_map=None, ignore_label=IGNORE_LABEL):
    fmt = make_format(num_classes, colour_map, ignore_label)
    images_path, masks_path = _dirs(data_dir, split, image_dir, mask_dir)
    images.require_dir(images_path, "folder images")
    images.require_dir(masks_path, "folder masks")

    def mask_key(name):
        stem = os.path.splitext(name)[0]
        if not mask_suffix:
            return stem
        return stem[:-len(mask_suffix)] if stem.endswith(mask_suffix) else None

    problems = []
    pairs = images.pair_by_stem("folder", images_path, masks_path, problems, mask_key=mask_key)
    return images.index_pairs(fmt, pairs, problems, description=f"split {split!r} of {data_dir}")


def read(data_dir, split="all", image_dir="images", mask_dir="masks", mask_suffix="",
         num_classes=2, colour_map=None, ignore_label=IGNORE_LABEL, skip_bad=False):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]), original size."""
    return images.pairs_dataset(
        index(data_dir, split, image_dir, mask_dir, mask_suffix, num_classes, colour_map,
              ignore_label), skip_bad, "folder")
