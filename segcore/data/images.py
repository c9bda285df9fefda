"""Reading image and mask files: header checks in Python, decoding in TensorFlow.

Indexing reads only file headers (PIL), so a missing file, a file that is not an
image, or an image/mask size mismatch is reported before training starts, with
the file names. Decoding runs in the tf.data graph (parallel, native code); a
truncated PNG or JPEG is caught there by its missing end marker and reported
with the file name.
"""

import os

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

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
    return tf.debugging.Assert(condition, [tf.strings.join([tf.strings.as_string(m)
                                                          if m.dtype != tf.string else m
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
    # A JPEG ends with EOI (FF D9); some writers add padding bytes after it.
    tail = tf.strings.substr(data, tf.maximum(length - 64, 0), 64)
    jpeg_ok = tf.logical_or(
        tf.logical_not(is_jpeg), tf.strings.regex_full_match(tail, r"(?s).*\xff\xd9.*")
    )
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
    rgb = tf.cast(decode_rgb(path), tf.int32)
    codes = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
    keys = tf.constant([r * 65536 + g * 256 + b for r, g, b in colour_to_class], tf.int32)
    values = tf.constant(list(colour_to_class.values()), tf.int32)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), -1)
    labels = table.lookup(codes)
    unknown = tf.where(labels < 0)
    first = tf.gather_nd(rgb, unknown[:1])
    check = assert_that(
        tf.equal(tf.shape(unknown)[0], 0),
        "DataError: ", path, ": unknown mask colour (",
        tf.strings.reduce_join(tf.strings.as_string(tf.reshape(first, [-1])), separator=","),
        "); expected one of ",
        ", ".join(f"({r},{g},{b})" for r, g, b in colour_to_class),
    )
    with tf.control_dependencies([check]):
        labels = tf.identity(labels)
    del ignore_label  # the table maps ignore colours explicitly
    return tf.cast(labels, tf.uint8)


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
    first = message.strip().split("\n")[0]
    return DataError(f"{context}{first}" if context else first)
