"""MS-COCO restricted to the 20 PASCAL VOC classes ("COCO-VOC"), defined as torchvision does.

Seed 004 (the Korean FCN project blog post, SOURCES.md; its section 2.6) trains FCN on
the COCO images whose objects belong to the VOC classes; torchvision trains and
reports its FCN / DeepLabv3 / LR-ASPP models on the same subset
("COCO-val2017-VOC-labels"). This reader follows torchvision's
`references/segmentation/coco_utils.py` (`get_coco`, `FilterAndRemapCocoCategories`,
`ConvertCocoPolysToMask`, `_coco_remove_images_without_annotations`) rule for rule,
so figures are comparable.

Layout (COCO's own, 2017 or 2014 names; `data_dir` holds both folders):

    annotations/instances_{train,val}2017.json     (or instances_{train,val}2014.json)
    {train,val}2017/<file_name>.jpg                (or {train,val}2014/)

`year=None` takes 2017 when its JSON is there, else 2014.

Classes: 0..20 in VOC order (`voc2012.CLASS_NAMES`) with the VOC palette. COCO
category ids map to VOC ids by torchvision's CAT_LIST (`COCO_IDS` below):
aeroplane = airplane 5, bicycle 2, bird 16, boat 9, bottle 44, bus 6, car 3, cat 17,
chair 62, cow 21, diningtable = dining table 67, dog 18, horse 19, motorbike =
motorcycle 4, person 1, pottedplant = potted plant 64, sheep 20, sofa = couch 63,
train 7, tvmonitor = tv 72. The other 60 COCO categories are background. The
JSON's own category names are checked against this table (`COCO_NAMES`).

Masks are rendered with pycocotools (`pycocotools.mask`), one binary mask per
annotation exactly as `COCO.annToMask` renders it (polygons merged; uncompressed
and compressed RLE), at the JSON's height x width. The rules, each an option whose
default is torchvision's:

* ``overlap="ignore"`` (torchvision): the label map is the pixel-wise maximum of
  ``mask_i * voc_class_i`` over the image's 20-class annotations, then every pixel
  covered by two or more of those masks (of the same class or not) becomes 255
  (ignored). ``overlap="max"``: keep the maximum (the highest VOC class id wins).
* ``crowd="class"`` (torchvision): ``iscrowd=1`` annotations are not dropped; a
  crowd region is one more instance of its class, rendered and counted in the
  overlap rule like any other. ``crowd="ignore"``: crowd pixels become 255 (and do
  not count as an overlap); ``crowd="background"``: crowd annotations are left out.
* ``min_area="auto"`` (torchvision): the train split keeps only the images that
  have at least one 20-class annotation and whose 20-class annotations (crowd
  included) have a total JSON ``area`` above 1,000 (the annotations' ``area``
  field, not rendered pixels); the val split keeps every image, including those
  with no annotation at all (all background). A number applies that threshold
  to any split; None keeps every image.

Images are read as torchvision's `CocoDetection` does, `Image.open(p).convert("RGB")`:
grey and CMYK JPEGs become RGB and the EXIF orientation tag is NOT applied (COCO's
polygons are drawn on the stored pixel grid; rotating the image would misalign
them). Images come in image-id order (`sorted(coco.imgs)`, as CocoDetection).

Rendering cost: polygons are rasterised per image; with ``cache_dir`` each
rendered map is written once as an 8-bit PNG (mode L) under
``cache_dir/<split><year>-<JSON sha256 prefix>-overlap_<rule>-crowd_<rule>-v1/``
and read back in later epochs and runs (another JSON or other rules give another
folder). Without it the maps are rendered at every read (the trainer's in-memory
tf.data cache then keeps them for small subsets). data/README.md gives the
measured cost at full scale.

Bad input: an annotation file that is not JSON or lacks `images`/`annotations`/
`categories`, an image or annotation without a needed key, an annotation whose
category id is not in `categories` or whose image id is not in `images`, or a VOC
category id with another name raise DataError naming the file and the key. Images
listed but missing on disk (named, with the count of the others) and JPEGs whose
size differs from the JSON's width/height are problems of the split: `read`
raises the first (with the count of the others) unless `skip_bad=True`, and
`python -m segcore.data check coco_voc` lists them all.
"""

import dataclasses
import hashlib
import json
import logging
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from segcore.data import images
from segcore.data.info import IGNORE_LABEL, DatasetInfo, pascal_palette
from segcore.data.voc2012 import CLASS_NAMES
from segcore.errors import DataError

log = logging.getLogger("segcore.data")

# VOC class id -> COCO category id (torchvision's CAT_LIST; 0 = background has none).
COCO_IDS = (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
# VOC class id -> the COCO category name of COCO_IDS (checked against the JSON).
COCO_NAMES = ("", "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
              "chair", "cow", "dining table", "dog", "horse", "motorcycle", "person",
              "potted plant", "sheep", "couch", "train", "tv")
COCO_TO_VOC = {coco: voc for voc, coco in enumerate(COCO_IDS) if voc}

INFO = DatasetInfo(
    name="coco_voc",
    num_classes=21,
    class_names=CLASS_NAMES,
    palette=pascal_palette(21),
    splits={"train": None, "val": 5000},  # train: what the 1,000-area rule keeps of train2017
    citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014; the VOC subset "
             "as in torchvision references/segmentation/coco_utils.py",
)

SPLITS = ("train", "val")
YEARS = ("2017", "2014")
OVERLAP_RULES = ("ignore", "max")
CROWD_RULES = ("class", "ignore", "background")
TRAIN_MIN_AREA = 1000
RENDER_VERSION = 1  # part of the cache folder name: bump when rendering changes
_IMAGE_KEYS = ("id", "file_name", "width", "height")
_ANNOTATION_KEYS = ("id", "image_id", "category_id", "segmentation", "area")


@dataclasses.dataclass(frozen=True)
class Rules:
    """The subset rules (see the module docstring); `min_area` None = keep every image."""

    overlap: str = "ignore"
    crowd: str = "class"
    min_area: float = None

    def folder_tag(self):
        return f"overlap_{self.overlap}-crowd_{self.crowd}-v{RENDER_VERSION}"


@dataclasses.dataclass
class Entry:
    """One image of the split: its file, JSON size and 20-class annotations
    as (voc class, iscrowd, segmentation, annotation id), in JSON order."""

    image_id: int
    file_name: str
    path: str
    width: int
    height: int
    annotations: list
    area: float
    image_method: int = images.IMAGE_TF


@dataclasses.dataclass
class CocoIndex:
    """The images of one split: kept `entries`, `dropped` file names (the area
    rule), every `problems` found on disk, and where rendered masks are cached."""

    split: str
    json_path: str
    image_dir: str
    rules: Rules
    entries: list
    dropped: list
    problems: list
    listed: int
    cache: str = None


def rules_for(split, overlap="ignore", crowd="class", min_area="auto"):
    """`Rules` of `split`, checking the option values."""
    if overlap not in OVERLAP_RULES:
        raise DataError(f"coco_voc: overlap must be one of {', '.join(OVERLAP_RULES)}; "
                        f"got {overlap!r}")
    if crowd not in CROWD_RULES:
        raise DataError(f"coco_voc: crowd must be one of {', '.join(CROWD_RULES)}; got {crowd!r}")
    if min_area == "auto":
        min_area = TRAIN_MIN_AREA if split == "train" else None
    elif min_area is not None and (isinstance(min_area, bool)
                                   or not isinstance(min_area, (int, float))):
        raise DataError(f"coco_voc: min_area must be 'auto', a number or None; got {min_area!r}")
    return Rules(overlap, crowd, min_area)


# --- layout -----------------------------------------------------------------------


def split_files(data_dir, split, year=None):
    """(annotation JSON, image folder, year) of `split` under `data_dir`."""
    if split not in SPLITS:
        raise DataError(f"coco_voc: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    years = (str(year),) if year else YEARS
    tried = []
    for candidate in years:
        path = os.path.join(data_dir, "annotations", f"instances_{split}{candidate}.json")
        if os.path.isfile(path):
            return path, os.path.join(data_dir, f"{split}{candidate}"), candidate
        tried.append(path)
    raise DataError(f"coco_voc: no {' or '.join(tried)} (expected COCO's layout: "
                    "annotations/instances_train2017.json, train2017/*.jpg; "
                    "python -m segcore.data download coco_voc --data-dir DIR)")


def available_splits(data_dir, year=None, **_):
    """The splits whose annotation JSON is in `data_dir` (for `check`)."""
    found = []
    for split in SPLITS:
        try:
            split_files(data_dir, split, year)
            found.append(split)
        except DataError:
            pass
    return tuple(found) or SPLITS


# --- the annotation file ----------------------------------------------------------


def load_json(path):
    """The annotation file as a dict with images, annotations and categories lists."""
    try:
        with open(path, "rb") as f:
            content = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not JSON ({error.msg} at line {error.lineno} column "
                        f"{error.colno}); expected a COCO instances file") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not JSON (not UTF-8 text: {error.reason}); "
                        "expected a COCO instances file") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: the JSON is a {type(content).__name__}, expected an object "
                        "with images, annotations and categories (a COCO instances file)")
    missing = [key for key in ("images", "annotations", "categories") if key not in content]
    if missing:
        raise DataError(f"{path}: no {', '.join(repr(k) for k in missing)} key; expected a COCO "
                        "instances file with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(content[key], list):
            raise DataError(f"{path}: '{key}' is a {type(content[key]).__name__}, expected a list")
    return content


def _require(path, what, position, item, keys):
    if not isinstance(item, dict):
        raise DataError(
            f"{path}: {what}[{position}] is a {type(item).__name__}, expected an object")
    for key in keys:
        if key not in item:
            ident = f" (id {item['id']})" if "id" in item else ""
            raise DataError(f"{path}: {what}[{position}]{ident} has no '{key}' key")


def check_categories(path, categories):
    """{COCO id: name} of the file; DataError when a VOC-class id carries another name."""
    names = {}
    for position, category in enumerate(categories):
        _require(path, "categories", position, category, ("id", "name"))
        names[category["id"]] = category["name"]
    for voc, coco in enumerate(COCO_IDS):
        if voc and coco in names and names[coco] != COCO_NAMES[voc]:
            raise DataError(f"{path}: category id {coco} is named {names[coco]!r}; coco_voc maps "
                            f"COCO id {coco} ({COCO_NAMES[voc]!r}) to VOC {CLASS_NAMES[voc]!r} "
                            "(expected the COCO 2014/2017 instances categories)")
    return names


def parse(path, content, image_dir):
    """[Entry] of every image of the file (sorted by image id), each with its
    20-class annotations; DataError for a missing key or an unknown id."""
    names = check_categories(path, content["categories"])
    entries = {}
    for position, image in enumerate(content["images"]):
        _require(path, "images", position, image, _IMAGE_KEYS)
        entries[image["id"]] = Entry(image["id"], image["file_name"],
                                     os.path.join(image_dir, image["file_name"]),
                                     int(image["width"]), int(image["height"]), [], 0.0)
    for position, annotation in enumerate(content["annotations"]):
        _require(path, "annotations", position, annotation, _ANNOTATION_KEYS)
        category = annotation["category_id"]
        if category not in names:
            raise DataError(f"{path}: annotations[{position}] (id {annotation['id']}) has "
                            f"category_id {category!r}, which is not in the file's 'categories'")
        entry = entries.get(annotation["image_id"])
        if entry is None:
            raise DataError(f"{path}: annotations[{position}] (id {annotation['id']}) has "
                            f"image_id {annotation['image_id']!r}, which is not in the file's "
                            "'images'")
        voc = COCO_TO_VOC.get(category)
        if voc is None:
            continue  # one of the 60 categories that are background here
        entry.annotations.append((voc, int(annotation.get("iscrowd", 0)),
                                  annotation["segmentation"], annotation["id"]))
        entry.area += float(annotation["area"])
    return [entries[key] for key in sorted(entries)]


def keeps(entry, rules):
    """The area rule: True when `entry` stays in the split."""
    if rules.min_area is None:
        return True
    return bool(entry.annotations) and entry.area > rules.min_area


def json_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index(data_dir, split="train", year=None, overlap="ignore", crowd="class", min_area="auto",
          cache_dir=None):
    """`CocoIndex` of a split: the area rule applied, kept images checked on disk."""
    rules = rules_for(split, overlap, crowd, min_area)
    json_path, image_dir, year = split_files(data_dir, split, year)
    all_entries = parse(json_path, load_json(json_path), image_dir)
    kept = [e for e in all_entries if keeps(e, rules)]
    dropped = [e.file_name for e in all_entries if not keeps(e, rules)]
    if kept and not os.path.isdir(image_dir):
        raise DataError(
            f"coco_voc: image folder not found: {image_dir} (the images of {json_path})")
    problems, missing, good = [], [], []
    for entry in kept:
        if not os.path.isfile(entry.path):
            missing.append(entry.path)
            continue
        try:
            header = images.read_header(entry.path)
        except DataError as error:
            problems.append(str(error))
            continue
        if (header.width, header.height) != (entry.width, entry.height):
            problems.append(f"{entry.path}: the JPEG is {header.width}x{header.height} but "
                            f"{json_path} gives width x height {entry.width}x{entry.height} "
                            f"(image id {entry.image_id})")
            continue
        entry.image_method = images.IMAGE_TF if header.format in ("JPEG", "PNG", "BMP", "GIF") \
            else images.IMAGE_PIL
        good.append(entry)
    if missing:
        others = (f" (and {len(missing) - 1} other listed image(s) missing)" if len(missing) > 1
                  else "")
        problems.insert(0, f"{missing[0]}: listed in {json_path} but not found{others}")
    cache = None
    if cache_dir:
        cache = os.path.join(cache_dir, f"{split}{year}-{json_digest(json_path)[:16]}-"
                                        f"{rules.folder_tag()}")
    return CocoIndex(split, json_path, image_dir, rules, good, dropped, problems, len(all_entries),
                     cache)


# --- rendering --------------------------------------------------------------------


def annotation_mask(segmentation, height, width):
    """uint8 [H, W] 0/1 mask of one annotation's `segmentation`, as pycocotools'
    `COCO.annToMask` renders it (its `annToRLE` branches, on the given size)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons: one RLE each, merged (union)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    else:
        rle = segmentation  # compressed RLE
    return mask_utils.decode(rle)


def _checked_mask(entry, json_path, segmentation, annotation_id):
    if isinstance(segmentation, dict) and list(segmentation.get("size", [])) != [
            entry.height, entry.width]:
        raise DataError(f"{json_path}: annotation id {annotation_id}: RLE size "
                        f"{segmentation.get('size')} differs from its image's height x width "
                        f"[{entry.height}, {entry.width}] ({entry.file_name})")
    try:
        mask = annotation_mask(segmentation, entry.height, entry.width)
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise DataError(f"{json_path}: annotation id {annotation_id}: segmentation is neither "
                        f"polygons nor RLE ({error})") from None
    if mask.shape != (entry.height, entry.width):
        raise DataError(f"{json_path}: annotation id {annotation_id}: mask of shape {mask.shape}, "
                        f"expected ({entry.height}, {entry.width})")
    return mask


def render(entry, rules, json_path=""):
    """uint8 [H, W] VOC label map of `entry` by `rules` (see the module docstring)."""
    labels = np.zeros((entry.height, entry.width), np.uint8)
    covered = np.zeros((entry.height, entry.width), np.int32)
    crowd_pixels = np.zeros((entry.height, entry.width), bool)
    for voc, is_crowd, segmentation, annotation_id in entry.annotations:
        if is_crowd and rules.crowd == "background":
            continue
        mask = _checked_mask(entry, json_path, segmentation, annotation_id)
        if is_crowd and rules.crowd == "ignore":
            crowd_pixels |= mask.astype(bool)
            continue
        np.maximum(labels, mask * np.uint8(voc), out=labels)
        covered += mask
    if rules.overlap == "ignore":
        labels[covered > 1] = IGNORE_LABEL
    labels[crowd_pixels] = IGNORE_LABEL
    return labels


def cached_labels(entry, rules, cache, json_path=""):
    """The label map of `entry`: read from the cache folder, or rendered (and
    written there, atomically, when `cache` is set)."""
    if cache is None:
        return render(entry, rules, json_path)
    path = os.path.join(cache, os.path.splitext(entry.file_name)[0] + ".png")
    if os.path.isfile(path):
        with Image.open(path) as stored:
            labels = np.asarray(stored)
        if labels.shape != (entry.height, entry.width) or labels.dtype != np.uint8:
            raise DataError(f"{path}: cached mask is {labels.dtype} {labels.shape}, expected uint8 "
                            f"({entry.height}, {entry.width}); delete {cache} to render again")
        return labels
    labels = render(entry, rules, json_path)
    os.makedirs(cache, exist_ok=True)
    partial = f"{path}.{os.getpid()}.{id(labels)}.tmp"
    Image.fromarray(labels).save(partial, format="PNG")
    os.replace(partial, path)
    return labels


# --- the tf.data reader -----------------------------------------------------------


def dataset_of(coco_index):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]) of the
    index's entries, in image-id order."""
    entries, rules, cache, json_path = (coco_index.entries, coco_index.rules, coco_index.cache,
                                        coco_index.json_path)

    def labels_of(position):
        try:
            return cached_labels(entries[int(position)], rules, cache, json_path)
        except DataError as error:
            raise ValueError(f"DataError: {error}") from None

    def decode(position, path, method, height, width):
        image = images.decode_image(path, 1, 0, method)  # orientation 1: no EXIF rotation
        labels = tf.numpy_function(labels_of, [position], tf.uint8, stateful=False)
        labels = tf.ensure_shape(labels, [None, None])
        check = images.assert_that(
            tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.stack([height, width]))),
            "DataError: ", path, ": decoded as ", tf.strings.as_string(tf.shape(image)[1]), "x",
            tf.strings.as_string(tf.shape(image)[0]), " but the JSON gives ",
            tf.strings.as_string(width), "x", tf.strings.as_string(height),
        )
        with tf.control_dependencies([check]):
            return tf.identity(image), tf.identity(labels)

    columns = (
        tf.range(len(entries), dtype=tf.int64),
        tf.constant([e.path for e in entries], tf.string),
        tf.constant([e.image_method for e in entries], tf.int32),
        tf.constant([e.height for e in entries], tf.int32),
        tf.constant([e.width for e in entries], tf.int32),
    )
    return tf.data.Dataset.from_tensor_slices(columns).map(
        tf.autograph.experimental.do_not_convert(decode),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def raise_problems(coco_index):
    """DataError with the first problem of the index (and the count of the others), if any."""
    problems = coco_index.problems
    if problems:
        more = (f" (and {len(problems) - 1} more problem(s); `python -m segcore.data check "
                "coco_voc` lists them all)") if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}")


def read(data_dir, split="train", year=None, overlap="ignore", crowd="class", min_area="auto",
         cache_dir=None, skip_bad=False):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]) of a COCO-VOC split.

    Options (defaults = torchvision's rules, see the module docstring): `year`
    ("2017", "2014", None = 2017 if present), `overlap` ("ignore" | "max"),
    `crowd` ("class" | "ignore" | "background"), `min_area` ("auto" = 1,000 on
    train and none on val, a number, or None), `cache_dir` (write each rendered
    map once as PNG there), `skip_bad` (leave out and log the images with problems
    found at indexing: missing files, unreadable headers, sizes that differ from
    the JSON's; an error while decoding or rendering still stops the read).
    """
    coco_index = index(data_dir, split, year, overlap, crowd, min_area, cache_dir)
    if not skip_bad:
        raise_problems(coco_index)
    for problem in coco_index.problems:
        log.warning("coco_voc: skip_bad=True: skipped: %s", problem)
    if not coco_index.entries:
        raise DataError(f"coco_voc: no usable images in split {split!r} of {data_dir} "
                        f"({coco_index.listed} listed, {len(coco_index.dropped)} dropped by the "
                        f"area rule)")
    return dataset_of(coco_index)


# --- python -m segcore.data check coco_voc ----------------------------------------


def _names(items, limit=20):
    return ", ".join(items[:limit]) + (" ..." if len(items) > limit else "")


def fill_report(report, data_dir, split, **options):
    """`check` hook: kept/dropped counts, then every kept image decoded and rendered once."""
    coco_index = index(data_dir, split, **options)
    rules = coco_index.rules
    rule = ("none (every image kept)" if rules.min_area is None else
            f"an annotation of the 20 classes and a total JSON area > {rules.min_area:g}")
    report.notes.append(f"{coco_index.json_path}: {coco_index.listed} image(s) listed; area rule "
                        f"{rule}: kept {coco_index.listed - len(coco_index.dropped)}, dropped "
                        f"{len(coco_index.dropped)}"
                        + (f" ({_names(coco_index.dropped)})" if coco_index.dropped else ""))
    crowd = sum(1 for e in coco_index.entries for a in e.annotations if a[1])
    unannotated = [e.file_name for e in coco_index.entries if not e.annotations]
    report.notes.append(f"rules: overlap={rules.overlap}, crowd={rules.crowd}; {crowd} crowd "
                        f"annotation(s) of the 20 classes; {len(unannotated)} kept image(s) "
                        "without any (all background)"
                        + (f": {_names(unannotated)}" if unannotated else ""))
    report.problems += coco_index.problems
    report.listed = coco_index.listed - len(coco_index.dropped)
    decode = tf.function(lambda path, method: images.decode_image(path, 1, 0, method))
    for entry in coco_index.entries:
        try:
            labels = cached_labels(entry, rules, coco_index.cache, coco_index.json_path)
            image = decode(tf.constant(entry.path), tf.constant(entry.image_method)).numpy()
        except DataError as error:
            report.problems.append(str(error))
            continue
        except tf.errors.OpError as error:
            report.problems.append(str(images.data_error_from(error)))
            continue
        if image.shape[:2] != labels.shape:
            report.problems.append(f"{entry.path}: decoded as {image.shape[1]}x{image.shape[0]} "
                                   f"but the JSON gives {entry.width}x{entry.height}")
            continue
        report.add(image, labels)
