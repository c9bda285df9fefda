"""Reading image and mask files: header checks in Python, decoding in TensorFlow.

Indexing reads only file headers (PIL), so a missing file, a file that is not an
image, a mask of the wrong kind (RGB where class ids are expected, 16-bit, JPEG)
or an image/mask size mismatch is reported before training starts, with the
file names. Decoding runs in the tf.data graph (parallel, native code); a
truncated PNG or JPEG is caught there by its missing end marker and reported
with the file name, and so are label values or colours outside the dataset's
table.

Readers use the second half of this module: `pair_by_stem` (pairing, naming
unmatched and ambiguous files), `index_pairs` (header checks, collecting every
problem) and `pairs_dataset` (decoding; `skip_bad`). `scan` decodes every pair
once for `python -m segcore.data check`.
"""

import dataclasses
import logging
import os
import re

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from segcore.data.info import IGNORE_LABEL
from segcore.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def image_header(path):
    """(width, height, mode) of an image file, from its header only."""
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (deleted after indexing?)") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None


def check_same_size(image_path, mask_path):
    """Raise DataError naming both files and sizes when they differ."""
    iw, ih, _ = image_header(image_path)
    mw, mh, _ = image_header(mask_path)
    if (iw, ih) != (mw, mh):
        raise DataError(
            f"image/mask size mismatch: {image_path} is {iw}x{ih} but {mask_path} is {mw}x{mh}"
        )


def require_dir(path, what):
    """The directory `path`, or a DataError saying what was expected there."""
    if not os.path.isdir(path):
        raise DataError(f"{what}: directory not found: {path}")
    return path


def list_images(directory):
    """Sorted image file names in `directory` (no recursion)."""
    return sorted(
        name for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )


def assert_that(condition, *message):
    """In-graph check: fail with the joined string `message` when `condition` is false."""
    return tf.debugging.Assert(condition, [tf.strings.join(
        [tf.strings.as_string(m) if m.dtype != tf.string else m
         for m in map(tf.convert_to_tensor, message)])])


def read_file_checked(path):
    """File bytes, failing with the file name when a PNG/JPEG is truncated."""
    data = tf.io.read_file(path)
    lower = tf.strings.lower(path)
    is_png = tf.strings.regex_full_match(lower, r".*\.png")
    is_jpeg = tf.strings.regex_full_match(lower, r".*\.jpe?g")
    length = tf.strings.length(data)
    png_ok = tf.logical_or(
        tf.logical_not(is_png),
        tf.equal(tf.strings.substr(data, tf.maximum(length - 8, 0), 8), _PNG_END),
    )
    # A JPEG ends with EOI (FF D9); some writers add padding bytes after it. (Compared
    # as bytes: a regex pattern would be UTF-8 encoded and never match 0xFF 0xD9.)
    tail = tf.io.decode_raw(tf.strings.substr(data, tf.maximum(length - 64, 0), 64), tf.uint8)
    has_eoi = tf.reduce_any(tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9)))
    jpeg_ok = tf.logical_or(tf.logical_not(is_jpeg), has_eoi)
    check = assert_that(
        tf.logical_and(png_ok, jpeg_ok),
        "DataError: ", path, ": truncated or corrupt image file (no end marker)",
    )
    with tf.control_dependencies([check]):
        return tf.identity(data)


def decode_rgb(path):
    """uint8 [H, W, 3] from a PNG/JPEG/BMP file; grey and RGBA become 3-channel RGB."""
    image = tf.io.decode_image(read_file_checked(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_colour_mask(path, colour_to_class, ignore_label=255):
    """Class ids uint8 [H, W] from an RGB colour-coded mask.

    `colour_to_class` maps (r, g, b) -> class id (or the ignore label). Any other
    colour fails with the file name and the first unknown colour.
    """
    del ignore_label  # the table maps ignore colours explicitly
    return colour_lookup(decode_rgb(path), colour_to_class, path)


def check_same_shape(image, labels, image_path, mask_path):
    """In-graph check that decoded image and mask have the same height and width."""
    check = assert_that(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(labels)[:2])),
        "DataError: image/mask size mismatch: ", image_path, " vs ", mask_path,
    )
    with tf.control_dependencies([check]):
        return tf.identity(image), tf.identity(labels)


def data_error_from(error, context=""):
    """Turn a tf.errors.OpError raised by one of our in-graph checks into DataError."""
    message = getattr(error, "message", str(error))
    marker = "DataError: "
    if marker in message:
        text = message[message.index(marker) + len(marker):]
        text = text.split("\n")[0].rstrip("]").strip()
        return DataError(text)
    missing = _NOT_FOUND.search(message)
    if missing:
        return DataError(f"{context}{missing.group(1).strip()}: file not found "
                         "(deleted or moved after indexing?)")
    first = message.strip().split("\n")[0]
    return DataError(f"{context}{first}" if context else first)


# ---------------------------------------------------------------------------
# Indexed readers: every dataset reader lists (image, mask) pairs in Python,
# checks them from file headers, and decodes them in the tf.data graph with the
# functions below. `index_pairs` never stops at the first problem: it returns
# the good samples and every problem found, so `python -m segcore.data check`
# can list them all; `pairs_dataset` raises on the first one unless
# `skip_bad=True`.
#
# Decoding is exact: a decoded image equals `np.array(Image.open(p).convert("RGB"))`
# and decoded mask values equal `np.array(Image.open(p))` pixel for pixel.
#   * JPEG images use libjpeg's accurate integer DCT (PIL's setting; TF's default
#     "fast" DCT differs from PIL by up to 16 grey levels), and the EXIF
#     orientation read from the header at indexing time is applied in the graph.
#   * Grey and RGBA PNGs, palette PNGs and CMYK JPEGs become 3-channel RGB.
#   * Class-index masks: an 8-bit grey PNG is decoded with `decode_png`. A
#     palette PNG (mode P, e.g. VOC's SegmentationClass) stores class ids as
#     palette indices, which TF cannot return: libpng expands them to colours.
#     Its indices are read with PIL in a `tf.numpy_function` (exactly
#     `np.array(Image.open(p))`; PIL releases the GIL while inflating, and this
#     measured ~6x faster than decoding to RGB in the graph and mapping every
#     pixel back through the palette with `tf.searchsorted`, which is also only
#     correct for palettes without repeated colours). Indexing checks from the
#     header that such a mask really is mode P or L, so an RGB rendering given
#     instead is reported, never read as ids. TIFF pages, 1-bit masks and other
#     formats also go through PIL.
#   * Mask values then go through the dataset's 256-entry label table (stored
#     value -> class id or the ignore label); any value outside it is an error
#     naming the file and the values.
# ---------------------------------------------------------------------------

log = logging.getLogger("segcore.data")

# image decode methods
IMAGE_TF, IMAGE_PIL = 0, 1
# mask decode methods
MASK_GREY_PNG, MASK_PIL, MASK_MAT, MASK_COLOUR, MASK_COLOUR_PIL, MASK_NONE = range(6)

_NOT_FOUND = re.compile(r"([^\s:][^;\n]*); No such file or directory")
_TF_IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
_INDEX_MODES = ("L", "P", "1")
_COLOUR_MODES = ("RGB", "RGBA", "P")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ORIENTATION_TAG = 0x0112


def label_table(mapping, ignore_values=(IGNORE_LABEL,), ignore_label=IGNORE_LABEL):
    """256-entry table: stored mask value -> class id, the ignore label, or -1 (invalid).

    `mapping` maps stored values to class ids (or to the ignore label);
    `ignore_values` are stored values that mean "ignore".
    """
    table = [-1] * 256
    for value, cls in mapping.items():
        table[int(value)] = int(cls)
    for value in ignore_values:
        table[int(value)] = ignore_label
    return tuple(table)


@dataclasses.dataclass(frozen=True)
class MaskFormat:
    """How a dataset stores its labels.

    kind "index": pixel values are class ids (grey "L" or palette "P" masks);
    `table` maps each stored value to a class id / the ignore label / -1.
    kind "colour": RGB colour-coded masks; `colours` maps (r, g, b) to a class
    id or the ignore label; any other colour is an error.
    `expected` says in words what the valid values are (for messages).
    """

    dataset: str
    kind: str
    table: tuple = None
    colours: dict = None
    expected: str = ""
    ignore_label: int = IGNORE_LABEL

    def __post_init__(self):
        if self.kind not in ("index", "colour"):
            raise ValueError(f"MaskFormat kind must be 'index' or 'colour', got {self.kind!r}")
        if self.kind == "index" and (self.table is None or len(self.table) != 256):
            raise ValueError("an index MaskFormat needs a 256-entry table")
        if self.kind == "colour" and not self.colours:
            raise ValueError("a colour MaskFormat needs a colours map")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One (image, mask) pair as indexed: paths plus how to decode each."""

    image: str
    mask: str
    image_page: int = 0
    mask_page: int = 0
    orientation: int = 1
    image_method: int = IMAGE_TF
    mask_method: int = MASK_GREY_PNG


@dataclasses.dataclass
class Index:
    """The checked pairs of one split and every problem found."""

    fmt: MaskFormat
    samples: list
    problems: list
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Header:
    width: int
    height: int
    mode: str
    format: str
    orientation: int
    frames: int


def read_header(path, page=0):
    """`Header` of an image file (page `page` of a multi-page TIFF), from its header only."""
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if page:
                if page >= frames:
                    raise DataError(f"{path}: has {frames} page(s), no page {page}")
                image.seek(page)
            # an eXIf chunk before the pixels; getexif() would decode them
            if image.format == "PNG":
                exif = Image.Exif()
                if image.info.get("exif"):
                    exif.load(image.info["exif"])
            elif image.format in ("JPEG", "TIFF", "WEBP", "MPO"):
                exif = image.getexif()
            else:
                exif = {}
            orientation = exif.get(_ORIENTATION_TAG, 1)
            orientation = orientation if orientation in range(1, 9) else 1
            return Header(image.width, image.height, image.mode, image.format or "",
                          orientation, frames)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (deleted after indexing?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None


def oriented_size(header):
    """(width, height) after the EXIF orientation is applied (5-8 swap the axes)."""
    if header.orientation in (5, 6, 7, 8):
        return header.height, header.width
    return header.width, header.height


def _stem(name):
    return os.path.splitext(name)[0]


def pair_by_stem(dataset, image_dir, mask_dir, problems, image_key=_stem, mask_key=_stem):
    """[(image_path, mask_path)] whose keys match, sorted by key.

    `image_key`/`mask_key` map a file name to its pairing key (None: not part of
    the dataset). Images without a mask, masks without an image, and keys with
    two candidate files are appended to `problems` (their pairs are left out).
    """
    def group(directory, key_of):
        groups = {}
        for name in list_images(directory):
            key = key_of(name)
            if key is not None:
                groups.setdefault(key, []).append(name)
        return groups

    image_groups, mask_groups = group(image_dir, image_key), group(mask_dir, mask_key)
    if not image_groups:
        problems.append(f"{dataset}: no images in {image_dir}")
        return []
    if not mask_groups:
        problems.append(f"{dataset}: no masks in {mask_dir}")
        return []
    missing = sorted(k for k in image_groups if k not in mask_groups)
    orphans = sorted(k for k in mask_groups if k not in image_groups)
    if missing:
        problems.append(f"{dataset}: {len(missing)} image(s) in {image_dir} without a mask in "
                        f"{mask_dir}: {', '.join(missing[:20])}"
                        f"{' ...' if len(missing) > 20 else ''}")
    if orphans:
        problems.append(f"{dataset}: {len(orphans)} mask(s) in {mask_dir} without an image in "
                        f"{image_dir}: {', '.join(orphans[:20])}"
                        f"{' ...' if len(orphans) > 20 else ''}")
    pairs = []
    for key in sorted(image_groups):
        if key not in mask_groups:
            continue
        names, masks = image_groups[key], mask_groups[key]
        if len(names) > 1:
            problems.append(f"{dataset}: {len(names)} candidate images for {key!r} in {image_dir}: "
                            f"{', '.join(names)}")
            continue
        if len(masks) > 1:
            problems.append(f"{dataset}: {len(masks)} candidate masks for image "
                            f"{os.path.join(image_dir, names[0])} in {mask_dir}: "
                            f"{', '.join(masks)}")
            continue
        pairs.append((os.path.join(image_dir, names[0]), os.path.join(mask_dir, masks[0])))
    return pairs


def _image_method(header):
    return IMAGE_TF if header.format in _TF_IMAGE_FORMATS else IMAGE_PIL


def _mask_method(fmt, header, path):
    """How to decode a mask, or raise DataError saying what is wrong with it."""
    what = f"{fmt.dataset} expects "
    if header.format == "JPEG":
        raise DataError(f"{path}: JPEG mask; JPEG compression changes label values, "
                        f"{what}lossless (PNG) masks")
    if header.mode in _SIXTEEN_BIT:
        raise DataError(f"{path}: 16-bit mask (mode {header.mode}); {what}8-bit "
                        + ("class-index" if fmt.kind == "index" else "colour") + " masks "
                        "(a 16-bit file is usually an instance-id or depth map, e.g. "
                        "Cityscapes *_instanceIds.png)")
    if fmt.kind == "colour":
        if header.mode not in _COLOUR_MODES:
            raise DataError(f"{path}: {header.mode} (grey/index) mask where {fmt.dataset} "
                            "expects an RGB colour-coded mask; for class-index masks use an index "
                            "format (e.g. folder without colour_map)")
        return MASK_COLOUR if header.format in ("PNG", "BMP", "GIF") else MASK_COLOUR_PIL
    if header.mode not in _INDEX_MODES:
        raise DataError(f"{path}: {header.mode} colour mask where {fmt.dataset} expects an 8-bit "
                        "class-index mask (palette 'P' or grey 'L' PNG whose pixel values are "
                        "class ids); a colour rendering of the labels cannot be read as class ids")
    if header.format == "PNG" and header.mode == "L":
        return MASK_GREY_PNG
    return MASK_PIL  # palette indices (mode P), 1-bit masks, TIFF pages, BMP...


def index_pairs(fmt, pairs, problems=None, description="", check_sizes=True):
    """`Index` of `pairs`: each checked from headers; bad pairs go to `problems`.

    `pairs` holds (image, mask) paths, or (image, mask, image_page, mask_page)
    for multi-page TIFFs; a mask of None means "no labels" (all ignore), a mask
    ending in `.mat` is an SBD `GTcls` file.
    """
    problems = [] if problems is None else problems
    samples = []
    for pair in pairs:
        image_path, mask_path = pair[0], pair[1]
        image_page, mask_page = (pair[2], pair[3]) if len(pair) > 2 else (0, 0)
        try:
            header = read_header(image_path, image_page)
            if mask_path is None:
                samples.append(Sample(image_path, "", image_page, 0, header.orientation,
                                      _image_method(header), MASK_NONE))
                continue
            if mask_path.endswith(".mat"):
                if not os.path.isfile(mask_path):
                    raise DataError(f"{mask_path}: file not found")
                method, mask_size = MASK_MAT, None
            else:
                mask_header = read_header(mask_path, mask_page)
                method = _mask_method(fmt, mask_header, mask_path)
                mask_size = (mask_header.width, mask_header.height)
            size = oriented_size(header)
            if check_sizes and mask_size is not None and size != mask_size:
                image_name = f"{image_path} (page {image_page})" if image_page else image_path
                mask_name = f"{mask_path} (page {mask_page})" if mask_page else mask_path
                rotated = (f" after EXIF orientation {header.orientation}"
                           if header.orientation > 1 else "")
                raise DataError(f"image/mask size mismatch: {image_name} is {size[0]}x{size[1]}"
                                f"{rotated} but {mask_name} is {mask_size[0]}x{mask_size[1]}")
            samples.append(Sample(image_path, mask_path, image_page, mask_page, header.orientation,
                                  _image_method(header), method))
        except DataError as error:
            problems.append(str(error))
    return Index(fmt, samples, problems, description)


# --- in-graph decoding ------------------------------------------------------


def _pil_rgb(path, page):
    path = path.decode() if isinstance(path, bytes) else str(path)
    try:
        with Image.open(path) as image:
            if page:
                image.seek(int(page))
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                high_bytes = (np.asarray(image, np.uint16) >> 8).astype(np.uint8)
                return np.repeat(high_bytes[..., None], 3, -1)
            return np.asarray(image.convert("RGB"), np.uint8)
    except Exception as error:  # reported with the file name
        raise ValueError(f"DataError: {path}: cannot decode image ({error})") from None


def _pil_values(path, page):
    path = path.decode() if isinstance(path, bytes) else str(path)
    try:
        with Image.open(path) as image:
            if page:
                image.seek(int(page))
            values = np.asarray(image)
    except Exception as error:
        raise ValueError(f"DataError: {path}: cannot decode mask ({error})") from None
    if values.ndim != 2 or values.dtype not in (np.uint8, np.bool_):
        raise ValueError(f"DataError: {path}: mask is {values.dtype} {values.shape}; "
                         "expected an 8-bit single-channel mask")
    return values.astype(np.uint8)


def read_mat_segmentation(path):
    """uint8 [H, W] `GTcls.Segmentation` of an SBD `cls/*.mat` file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        segmentation = np.asarray(mat["GTcls"].Segmentation)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (deleted after indexing?)") from None
    except (KeyError, AttributeError, IndexError):
        raise DataError(f"{path}: no GTcls.Segmentation (expected an SBD cls/*.mat file)") from None
    except Exception as error:  # scipy raises several types for bad files
        raise DataError(f"{path}: not a readable .mat file ({error})") from None
    if (segmentation.ndim != 2 or segmentation.min(initial=0) < 0
            or segmentation.max(initial=0) > 255):
        raise DataError(f"{path}: GTcls.Segmentation is not an 8-bit 2-D label map")
    return segmentation.astype(np.uint8)


def _mat_values(path):
    path = path.decode() if isinstance(path, bytes) else str(path)
    try:
        return read_mat_segmentation(path)
    except DataError as error:
        raise ValueError(f"DataError: {error}") from None


def _numpy(fn, args, channels=None):
    out = tf.numpy_function(fn, args, tf.uint8, stateful=False)
    return tf.ensure_shape(out, [None, None] + ([channels] if channels else []))


def apply_orientation(image, orientation):
    """Apply an EXIF orientation (1-8) as PIL's `ImageOps.exif_transpose` does."""
    branches = [
        lambda: image,
        lambda: image[:, ::-1],
        lambda: image[::-1, ::-1],
        lambda: image[::-1],
        lambda: tf.transpose(image, [1, 0, 2]),
        lambda: tf.transpose(image[::-1], [1, 0, 2]),  # 90 degrees clockwise
        lambda: tf.transpose(image[::-1, ::-1], [1, 0, 2]),
        lambda: tf.transpose(image[:, ::-1], [1, 0, 2]),  # 90 degrees counter-clockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)


def decode_image(path, orientation=1, page=0, method=IMAGE_TF):
    """uint8 [H, W, 3] equal to PIL's `exif_transpose(Image.open(path)).convert("RGB")`."""
    path = tf.convert_to_tensor(path, tf.string)

    def with_tf():
        data = read_file_checked(path)
        is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")
        return tf.cond(
            is_jpeg,
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.ensure_shape(
                tf.io.decode_image(data, channels=3, expand_animations=False), [None, None, 3]),
        )

    image = tf.cond(tf.equal(method, IMAGE_PIL),
                    lambda: _numpy(_pil_rgb, [path, page], 3), with_tf)
    return apply_orientation(image, orientation)


DIRECT_COMPARE_COLOURS = 8  # up to this many colours, compare instead of a hash table


def colour_lookup(rgb, colour_to_class, path):
    """Class ids uint8 [H, W] of an RGB mask; unknown colours fail naming the file and colour."""
    rgb = tf.cast(rgb, tf.int32)
    codes = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
    keys = [r * 65536 + g * 256 + b for r, g, b in colour_to_class]
    values = list(colour_to_class.values())
    if len(keys) <= DIRECT_COMPARE_COLOURS:  # KITTI's 3 colours: ~2x cheaper than hashing
        labels = tf.fill(tf.shape(codes), -1)
        for key, value in zip(keys, values):
            labels = tf.where(tf.equal(codes, key), value, labels)
    else:
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.int32), tf.constant(values, tf.int32)), -1)
        labels = table.lookup(codes)
    any_unknown = tf.reduce_min(labels) < 0

    def first_unknown():  # only computed when there is one
        first = tf.gather_nd(rgb, tf.where(labels < 0)[:1])
        return tf.strings.reduce_join(tf.strings.as_string(tf.reshape(first, [-1])), separator=",")

    check = assert_that(
        tf.logical_not(any_unknown),
        "DataError: ", path, ": unknown mask colour (",
        tf.cond(any_unknown, first_unknown, lambda: tf.constant("")),
        "); expected one of ",
        ", ".join(f"({r},{g},{b})" for r, g, b in colour_to_class),
    )
    with tf.control_dependencies([check]):
        return tf.cast(tf.identity(labels), tf.uint8)


def mask_values(path, method, page=0):
    """uint8 [H, W] stored values of an index mask, equal to `np.array(Image.open(path))`
    (`GTcls.Segmentation` for an SBD .mat file)."""
    return tf.switch_case(tf.cast(method, tf.int32), [
        lambda: tf.io.decode_png(read_file_checked(path), channels=1)[..., 0],  # MASK_GREY_PNG
        lambda: _numpy(_pil_values, [path, page]),  # MASK_PIL
        lambda: _numpy(_mat_values, [path]),  # MASK_MAT
    ])


def apply_table(values, fmt, path):
    """Class ids from stored values through `fmt.table`; invalid values fail, named."""
    classes = tf.gather(tf.constant(fmt.table, tf.int32), tf.cast(values, tf.int32))
    invalid = classes < 0
    any_invalid = tf.reduce_any(invalid)

    def bad_values():  # only computed when there are some
        bad = tf.unique(tf.boolean_mask(tf.reshape(tf.cast(values, tf.int32), [-1]),
                                        tf.reshape(invalid, [-1])))[0]
        return tf.strings.reduce_join(tf.strings.as_string(tf.sort(bad)[:16]), separator=",")

    check = assert_that(
        tf.logical_not(any_invalid),
        "DataError: ", path, ": mask values ",
        tf.cond(any_invalid, bad_values, lambda: tf.constant("")),
        f" are not {fmt.expected}",
    )
    with tf.control_dependencies([check]):
        return tf.cast(tf.identity(classes), tf.uint8)


def make_decoder(index):
    """fn(sample dict of tensors) -> (image uint8 [H, W, 3], labels uint8 [H, W])."""
    fmt = index.fmt

    def decode(sample):
        image = decode_image(sample["image"], sample["orientation"], sample["image_page"],
                             sample["image_method"])
        path, method = sample["mask"], sample["mask_method"]
        if fmt.kind == "colour":
            def colour():
                rgb = tf.cond(tf.equal(method, MASK_COLOUR_PIL),
                              lambda: _numpy(_pil_rgb, [path, sample["mask_page"]], 3),
                              lambda: decode_rgb(path))
                return colour_lookup(rgb, fmt.colours, path)
            labels_fn = colour
        else:
            def labels_fn():
                values = mask_values(path, method, sample["mask_page"])
                return apply_table(values, fmt, path)
        labels = tf.cond(tf.equal(method, MASK_NONE),
                         lambda: tf.fill(tf.shape(image)[:2],
                                         tf.constant(fmt.ignore_label, tf.uint8)),
                         labels_fn)
        labels = tf.ensure_shape(labels, [None, None])
        check = assert_that(
            tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(labels)[:2])),
            "DataError: image/mask size mismatch: ", sample["image"], " is ",
            tf.strings.as_string(tf.shape(image)[1]), "x", tf.strings.as_string(tf.shape(image)[0]),
            " but ", path, " is ",
            tf.strings.as_string(tf.shape(labels)[1]), "x",
            tf.strings.as_string(tf.shape(labels)[0]),
        )
        with tf.control_dependencies([check]):
            return tf.identity(image), tf.identity(labels)

    # Every branch is an explicit tf.cond/switch_case: AutoGraph has nothing to convert,
    # and converting these nested closures costs seconds per dataset.
    return tf.autograph.experimental.do_not_convert(decode)


def _columns(samples):
    fields = [f.name for f in dataclasses.fields(Sample)]
    columns = {name: [getattr(s, name) for s in samples] for name in fields}
    return {name: tf.constant(values, tf.string if name in ("image", "mask") else tf.int32)
            for name, values in columns.items()}


def sample_tensors(sample):
    """A `Sample` as the dict of scalar tensors `make_decoder`'s function takes."""
    return {name: value[0] for name, value in _columns([sample]).items()}


def scan(index):
    """Decode every sample once: yields (sample, image, labels, problem) with numpy
    arrays, or None arrays and the problem message when it cannot be decoded."""
    decode = tf.function(make_decoder(index))
    for sample in index.samples:
        try:
            image, labels = decode(sample_tensors(sample))
            yield sample, image.numpy(), labels.numpy(), None
        except tf.errors.OpError as error:
            yield sample, None, None, str(data_error_from(error))


def _drop_bad(index):
    bad = {}
    for sample, _, _, problem in scan(index):
        if problem:
            bad[sample] = problem
    return bad


def pairs_dataset(index, skip_bad=False, name=None):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]) of an `Index`.

    With problems found at indexing, raises DataError with the first (and the
    count of the others) unless `skip_bad`; then the bad pairs are left out and
    logged (warning on the "segcore.data" logger), and every remaining pair is
    decoded once beforehand so that pairs that fail to decode are left out too.
    """
    name = name or index.fmt.dataset
    problems = list(index.problems)
    samples = list(index.samples)
    if problems and not skip_bad:
        more = (f" (and {len(problems) - 1} more problem(s); `python -m segcore.data check` "
                "lists them all)") if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}")
    if skip_bad:
        bad = _drop_bad(index)
        problems += list(bad.values())
        samples = [s for s in samples if s not in bad]
        if problems:
            log.warning("%s: skip_bad=True: skipped %d bad pair(s)/problem(s), kept %d pair(s):",
                        name, len(problems), len(samples))
            for problem in problems:
                log.warning("%s: skipped: %s", name, problem)
    if not samples:
        where = f" in {index.description}" if index.description else ""
        raise DataError(f"{name}: no usable image/mask pairs{where}")
    paths = tf.data.Dataset.from_tensor_slices(_columns(samples))
    return paths.map(make_decoder(index), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

