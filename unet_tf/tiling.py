"""Tile arithmetic of the unpadded ("valid") U-Net and the overlap-tile prediction.

Size arithmetic (Ronneberger et al. 2015, Sec. 2 and Fig. 2). Every level of the
contracting path applies two unpadded 3x3 convolutions (-4 pixels) and a 2x2
max-pooling (/2, the map must be even so no row is dropped); the deepest level
applies two more convolutions; every level of the expanding path doubles the
size (2x2 up-convolution) and applies two convolutions (-4). With ``b`` the size
of the deepest map after its convolutions and ``d`` the depth (number of
poolings)::

    input  = 2**d * b + 4 * (2**(d + 1) - 1)       (572 = 16 * 28 + 124)
    output = 2**d * b - 4 * (2**d - 1)             (388 = 16 * 28 - 60)
    border = (input - output) / 2 = 2 * (3 * 2**d - 2)   (92 pixels per side)

So valid input sizes are spaced by 2**d (16), every output is 16k + 4 wide, and
the output is the centre of the input. The smallest valid input of the depth-4
net is 188 (output 4): every decoder map must stay positive.

Overlap-tile strategy (paper Fig. 2). `predict_tiled` mirrors the image by the
border (92 px) on every side, cuts valid input tiles and stitches their outputs.
A valid U-Net commutes with shifts only by multiples of its pooling period
2**d: shifting the input by 8 pixels changes which pixels share a pooling
window. Tiles therefore start every ``step`` pixels, where ``step`` is the
largest multiple of 2**d not above the output tile size (an output tile of
388 = 16 * 24 + 4 is stepped by 384); the 4 extra rows/columns of each output
tile are dropped. Then the stitched prediction equals, to float rounding, the
prediction of one big valid input covering the whole mirrored image
(tests/test_unet_tiling.py checks this).

Everything in `predict_tiled` is TensorFlow ops on dynamic shapes, so it runs
eagerly or inside a `tf.function` whose input signature is
``[None, None, channels]``: an exported SavedModel does the tiling in its graph.
"""

import keras
import numpy as np
import tensorflow as tf

from segcore.errors import ConfigError


def border(depth=4):
    """Pixels lost per side by a valid U-Net of `depth` poolings (92 for depth 4)."""
    _check_depth(depth)
    return 2 * (3 * 2 ** depth - 2)


def output_size(input_size, depth=4):
    """Output height (or width) of a valid U-Net for an input of `input_size`.

    Raises ConfigError, naming the nearest valid sizes, when a map before a
    pooling is odd or a map size drops to zero or below.
    """
    _check_depth(depth)
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)):
        raise ConfigError(f"input size must be an integer, got {input_size!r}")
    size = _simulate(input_size, depth)
    if size is None:
        lower, upper = _neighbours(input_size, depth)
        nearest = (f"nearest valid sizes: {lower} or {upper}" if lower is not None
                   else f"smallest valid size: {upper}")
        raise ConfigError(
            f"input size {input_size} is not valid for a U-Net of depth {depth} with "
            f"padding='valid' (every map before a pooling must be even and every map "
            f"positive); {nearest}"
        )
    return size


def is_valid_input_size(input_size, depth=4):
    """True when `output_size(input_size, depth)` is defined."""
    _check_depth(depth)
    return _simulate(input_size, depth) is not None


def minimum_input_size(depth=4):
    """Smallest valid input size (188 for depth 4, giving a 4-pixel output)."""
    _check_depth(depth)
    return _size_for_bottom(_minimum_bottom(depth), depth)


def valid_input_sizes(near, depth=4, count=5):
    """The `count` valid input sizes closest to `near`, ascending.

    >>> valid_input_sizes(572, count=3)
    [556, 572, 588]
    """
    _check_depth(depth)
    if not isinstance(count, int) or count < 1:
        raise ConfigError(f"count must be a positive integer, got {count!r}")
    period = 2 ** depth
    b_min = _minimum_bottom(depth)
    b_near = max(b_min, int(round((near - _size_for_bottom(0, depth)) / period)))
    candidates = range(max(b_min, b_near - count), b_near + count + 1)
    sizes = sorted((_size_for_bottom(b, depth) for b in candidates),
                   key=lambda s: (abs(s - near), s))[:count]
    return sorted(sizes)


def input_size_for_output(min_output, depth=4):
    """Smallest valid input whose output is at least `min_output` pixels."""
    _check_depth(depth)
    b = _minimum_bottom(depth)
    offset = 4 * (2 ** depth - 1)
    b = max(b, -(-(min_output + offset) // 2 ** depth))
    return _size_for_bottom(b, depth)


def tile_step(tile_size, depth=4):
    """Stride between tiles: the largest multiple of 2**depth <= the output tile."""
    out = output_size(tile_size, depth)
    step = (out // 2 ** depth) * 2 ** depth
    if step == 0:
        raise ConfigError(
            f"tile_size {tile_size} gives a {out}-pixel output tile, less than the pooling "
            f"period {2 ** depth}; use a tile of at least "
            f"{input_size_for_output(2 ** depth, depth)}"
        )
    return step


def _check_depth(depth):
    if not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth must be a positive integer, got {depth!r}")


def _simulate(size, depth):
    if not isinstance(size, (int, np.integer)):
        return None
    size = int(size)
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    if size <= 0:
        return None
    for _ in range(depth):
        size = 2 * size - 4
        if size <= 0:
            return None
    return size


def _size_for_bottom(b, depth):
    return 2 ** depth * b + 4 * (2 ** (depth + 1) - 1)


def _minimum_bottom(depth):
    b = 1
    while _simulate(_size_for_bottom(b, depth), depth) is None:
        b += 1
    return b


def _neighbours(size, depth):
    """Nearest valid sizes strictly below and above `size` (lower is None if none)."""
    period, base, b_min = 2 ** depth, _size_for_bottom(0, depth), _minimum_bottom(depth)
    b_upper = max(b_min, (size - base) // period + 1)
    b_lower = -(-(size - base) // period) - 1
    lower = _size_for_bottom(b_lower, depth) if b_lower >= b_min else None
    return lower, _size_for_bottom(b_upper, depth)


# --------------------------------------------------------------------------------------
# Overlap-tile prediction
# --------------------------------------------------------------------------------------


def model_depth(model):
    """Number of 2x2 max-poolings of a U-Net built by `build_unet` (its depth)."""
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    if not pools:
        raise ConfigError(f"model {model.name!r} has no MaxPooling2D layer: not a U-Net")
    return len(pools)


def mirror_indices(length, before, after):
    """Indices into an axis of `length` that mirror it by `before`/`after` pixels.

    Reflection without repeating the edge pixel (numpy's ``mode="reflect"``),
    repeated as often as needed, so pads may exceed the image (tiny images).
    Works on tensors (dynamic sizes).
    """
    length = tf.convert_to_tensor(length, tf.int32)
    positions = tf.range(-before, length + after)
    period = tf.maximum(2 * (length - 1), 1)
    q = tf.math.floormod(positions, period)
    reflected = (length - 1) - tf.abs(q - (length - 1))
    return tf.where(length > 1, reflected, tf.zeros_like(positions))


def mirror_pad(images, top, bottom, left, right):
    """Mirror-pad a batch [N, H, W, C] (reflect, any pad size) with TensorFlow ops."""
    shape = tf.shape(images)
    rows = mirror_indices(shape[1], top, bottom)
    cols = mirror_indices(shape[2], left, right)
    return tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)


def tile_layout(height, width, tile_size, depth=4):
    """Static description of the tiling of an H x W image.

    Returns a dict: ``border`` (mirror pad on top/left), ``step``, ``tiles``
    (rows, cols) and ``padded`` (height, width of the mirrored image). The padded
    image is itself a valid input, whose output's top-left H x W is the answer.
    """
    out = output_size(tile_size, depth)
    margin = (tile_size - out) // 2
    step = tile_step(tile_size, depth)
    rows, cols = -(-height // step), -(-width // step)
    return {
        "border": margin,
        "step": step,
        "tiles": (rows, cols),
        "padded": ((rows - 1) * step + tile_size, (cols - 1) * step + tile_size),
    }


def predict_tiled_batch(model, images, tile_size=None, batch_size=4):
    """Overlap-tile prediction of a batch [N, H, W, C] -> probabilities [N, H, W, K].

    See `predict_tiled`; all images of the batch share H and W.
    """
    tile_size, depth = _resolve_tile(model, tile_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = output_size(tile_size, depth)
    margin = (tile_size - out) // 2
    step = tile_step(tile_size, depth)

    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ConfigError(
            f"images must be [batch, height, width, channels], got shape {images.shape}"
        )
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    n, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    rows = (height + step - 1) // step
    cols = (width + step - 1) // step
    padded = mirror_pad(
        images, margin, (rows - 1) * step + tile_size - margin - height,
        margin, (cols - 1) * step + tile_size - margin - width,
    )

    # [N, rows, cols, T*T*C] -> [N*rows*cols, T, T, C]; tile (i, j) starts at (i*step, j*step).
    patches = tf.image.extract_patches(
        padded, sizes=[1, tile_size, tile_size, 1], strides=[1, step, step, 1],
        rates=[1, 1, 1, 1], padding="VALID",
    )
    tiles = tf.reshape(patches, [-1, tile_size, tile_size, channels])
    if images.shape[-1] is not None:
        tiles.set_shape([None, tile_size, tile_size, images.shape[-1]])

    probabilities = _predict_in_batches(model, tiles, batch_size)
    classes = tf.shape(probabilities)[-1]
    kept = probabilities[:, :step, :step, :]  # drop the out - step extra rows/cols
    kept = tf.reshape(kept, [n, rows, cols, step, step, classes])
    kept = tf.transpose(kept, [0, 1, 3, 2, 4, 5])
    stitched = tf.reshape(kept, [n, rows * step, cols * step, classes])
    return stitched[:, :height, :width, :]


def predict_tiled(model, image, tile_size=None, batch_size=4):
    """Per-pixel class probabilities of an image of any size, by overlap-tile.

    Args:
      model: a valid-padding U-Net (`build_unet(padding="valid")`) returning
        logits; softmax is applied (sigmoid for a single output channel).
      image: [H, W, C], any H and W (also smaller than one tile, non-square),
        numpy or tensor; cast to float32.
      tile_size: input tile size; default the model's static input size, or
        572 when its input size is dynamic. Must be a valid input size.
      batch_size: tiles per forward pass.
    Returns:
      float32 tensor [H, W, classes] of probabilities.

    Pure TensorFlow: callable in a `tf.function` with input signature
    ``tf.TensorSpec([None, None, C])``.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ConfigError(f"image must be [height, width, channels], got shape {image.shape}")
    return predict_tiled_batch(model, image[tf.newaxis], tile_size, batch_size)[0]


def _resolve_tile(model, tile_size):
    depth = model_depth(model)
    if tile_size is None:
        static = model.input_shape[1]
        tile_size = static if static is not None else 572
    if not isinstance(tile_size, (int, np.integer)):
        raise ConfigError(f"tile_size must be an integer, got {tile_size!r}")
    expected = output_size(int(tile_size), depth)  # raises ConfigError naming valid sizes
    static_h, static_w = model.input_shape[1:3]
    if any(size is not None and size != tile_size for size in (static_h, static_w)):
        raise ConfigError(
            f"tile_size {tile_size} differs from the model's input size "
            f"{static_h}x{static_w}; build the model with input_shape=(None, None, C) "
            "to tile freely"
        )
    produced = model.compute_output_shape((1, tile_size, tile_size, model.input_shape[-1]))
    if tuple(produced[1:3]) != (expected, expected):
        raise ConfigError(
            f"model {model.name!r} maps a {tile_size}-pixel tile to {produced[1]}x{produced[2]}, "
            f"not the {expected} of a valid-padding U-Net of depth {depth}: predict_tiled "
            "needs build_unet(padding='valid')"
        )
    return int(tile_size), depth


def _predict_in_batches(model, tiles, batch_size):
    count = tf.shape(tiles)[0]
    num_batches = (count + batch_size - 1) // batch_size

    def probabilities(batch):
        logits = tf.cast(model(batch, training=False), tf.float32)
        if logits.shape[-1] == 1:
            return tf.sigmoid(logits)
        return tf.nn.softmax(logits, axis=-1)

    def body(i, array):
        batch = tiles[i * batch_size:(i + 1) * batch_size]
        return i + 1, array.write(i, probabilities(batch))

    array = tf.TensorArray(tf.float32, size=num_batches, infer_shape=False)
    _, array = tf.while_loop(lambda i, _: i < num_batches, body, [tf.constant(0), array])
    return array.concat()


DIHEDRAL_COUNTS = (1, 4, 8)


def predict_dihedral(predict, images, count=8):
    """Mean of `predict` over `count` rotated/mirrored versions of `images`.

    predict: images [N, H, W, C] -> probabilities [N, H, W, K] of any H, W.
    count 1: `predict(images)`; 4: the rotations by 0, 90, 180 and 270 degrees;
    8: those and their left-right mirrors (the dihedral group of the square).
    Each version's probabilities are mapped back to the original orientation
    before averaging, so the result is exact for a network that is itself
    rotation-equivariant. The U-Net paper's ISBI 2012 figures are "averaged over
    7 rotated versions of the input data" (Sec. 4): the input and 7 others,
    which count=8 reads as the 8 orientations of the square.
    """
    if count not in DIHEDRAL_COUNTS:
        raise ConfigError(f"eval_rotations must be one of {DIHEDRAL_COUNTS}, got {count!r}")
    total = None
    for mirrored in (False, True) if count == 8 else (False,):
        base = tf.reverse(images, [2]) if mirrored else images
        for quarter_turns in range(4 if count > 1 else 1):
            probabilities = predict(tf.image.rot90(base, quarter_turns))
            probabilities = tf.image.rot90(probabilities, -quarter_turns)
            if mirrored:
                probabilities = tf.reverse(probabilities, [2])
            total = probabilities if total is None else total + probabilities
    return total / float(count)
