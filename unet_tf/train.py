"""`python -m unet_tf.train`: train the U-Net (Ronneberger, Fischer, Brox 2015).

With no arguments it trains a width-reduced U-Net on generated EM-like slices
(`synthetic_membranes`, no download) and writes runs/synthetic_unet/. Given
`--data-dir` (and no `--preset`) it runs the paper's ISBI 2012 experiment:

    python -m unet_tf.train --data-dir data/isbi2012            # preset isbi_unet
    python -m unet_tf.train --preset isbi_unet_small --data-dir data/isbi2012

`--help` lists every flag; `--list-presets` the presets and their target figures.

Input: grey images. The engine hands RGB [0, 255]; `preprocess` averages the
channels (ISBI slices are grey, stored as 3 equal channels, so this is their
grey value) and scales to [0, 1]: the network has 1 input channel.

Valid convolutions and label size. The paper's U-Net has unpadded convolutions:
its output is the centre of its input, 92 pixels smaller on each side (depth 4).
The engine's `SegmentationTask` feeds the network whole batches and compares
its logits with labels of the batch's size, so the family's network,
`OverlapTileUNet`, makes output size = input size the paper's way: it mirrors
the batch by the border (92 px) on every side, plus a few rows/columns at the
bottom/right up to the next valid input size, runs the valid U-Net and drops
the extra output rows/columns. Every labelled pixel is predicted from its real
context, and pixels near the image border from the mirrored context (paper
Fig. 2). With ``train_tile`` = None (default) each image is one tile (a 512x512
ISBI slice is a 700x700 input, a 516x516 output cropped to 512x512); with
``train_tile=572`` the image is cut into the paper's 572x572 input tiles (388
output, stepped by 384) that are run as one batch in the same step. The paper
chose 572 tiles and batch 1 for GPU memory and "favor[s] large input tiles over a
large batch size"; one whole-slice tile per step is that preference taken to
the slice size, with the same gradient as the tiles of the slice.

Evaluation and the exported SavedModel use the overlap-tile strategy with
``tile_size`` input tiles (572, as the paper): `unet_tf.predict_tiled_batch` in
TensorFlow ops, so the SavedModel serves images of any size. Because tiles start
every multiple of 2**depth from the same mirrored origin, this equals the
one-tile prediction used in training up to float rounding.

For datasets whose classes are ("cell", "membrane") (isbi2012,
synthetic_membranes) the engine's evaluation adds the ISBI challenge metrics
(`segcore.isbi_metrics`: pixel error, cell-interior IoU, Rand and warping error
at threshold 0.5, and the Rand error at the best threshold of 0, 0.1, ..., 1 as
the challenge's scripts report it) to metrics.json["isbi"], with those of the
map "cell interior everywhere" under metrics.json["baseline"]["isbi"];
`python -m segcore.evaluate` reports the same of the SavedModel.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from segcore import cli
from segcore.errors import ConfigError
from segcore.options import ModelOptions
from segcore.training import ModelFamily, train_and_evaluate  # noqa: F401 (public)
from unet_tf.model import build_unet
from unet_tf.presets import DEFAULT_PRESET, ISBI_PRESET, PRESETS
from unet_tf.tiling import (
    DIHEDRAL_COUNTS,
    border,
    minimum_input_size,
    mirror_pad,
    model_depth,
    output_size,
    predict_dihedral,
    predict_tiled_batch,
    tile_step,
    valid_input_sizes,
)
from unet_tf.weight_map import border_weight_map

PROG = "python -m unet_tf.train"


def tiling_options(train_tile: int = None, tile_size: int = None, tiles_per_pass: int = 4,
                   eval_rotations: int = 1):
    """The U-Net family's own model options (besides `build_unet`'s): tiles and test-time
    rotations.

    Args:
      train_tile: 0 or None: each training image is one mirrored tile; N: N x N
        overlap tiles (paper: 572).
      tile_size: input tile of the overlap-tile evaluation and SavedModel
        (default 572, the paper's, at depth 4).
      tiles_per_pass: tiles per forward pass at evaluation.
      eval_rotations: 1, 4 or 8: evaluation and SavedModel average the probabilities
        over this many rotated (8: and mirrored) versions of the image
        (`unet_tf.predict_dihedral`); the paper's ISBI figures average "over 7 rotated
        versions of the input data", 8 here. Costs that many predictions.
    """
    return {"train_tile": train_tile, "tile_size": tile_size, "tiles_per_pass": tiles_per_pass,
            "eval_rotations": eval_rotations}


# The model options and flags: build_unet's keyword arguments, then tiling_options'.
OPTIONS = ModelOptions("unet", build_unet, tiling_options)


def preprocess(images):
    """RGB [0, 255] -> grey [0, 1], 1 channel (the mean of the channels)."""
    images = tf.cast(images, tf.float32)
    return tf.reduce_mean(images, axis=-1, keepdims=True) / 255.0


# --------------------------------------------------------------------------------------
# Output size = input size for the valid U-Net
# --------------------------------------------------------------------------------------


def covering_input_size(length, depth=4):
    """Smallest valid input whose output covers `length` pixels (a tensor or int).

    Valid inputs are 2**d * b + 4 * (2**(d + 1) - 1) with outputs 2**d * b - 4 * (2**d - 1)
    (`unet_tf.tiling`); b is the smallest that gives an output >= length.
    """
    period = 2 ** depth
    base = 4 * (2 * period - 1)
    b_min = (minimum_input_size(depth) - base) // period
    b = tf.maximum(b_min, (length + 4 * (period - 1) + period - 1) // period)
    return period * b + base


def whole_image_logits(unet, images, training=False):
    """Logits [B, H, W, K] of a valid U-Net on images [B, H, W, C] of any size:
    mirror by the border, one valid tile, crop (see the module docstring)."""
    depth = model_depth(unet)
    margin = border(depth)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    padded = mirror_pad(images, margin, covering_input_size(height, depth) - margin - height,
                        margin, covering_input_size(width, depth) - margin - width)
    return unet(padded, training=training)[:, :height, :width, :]


def tiled_logits(unet, images, tile_size, training=False):
    """Logits [B, H, W, K] from the paper's overlap tiles of `tile_size`, all tiles
    of the batch in one forward pass (same arithmetic as `predict_tiled_batch`)."""
    depth = model_depth(unet)
    out = output_size(tile_size, depth)
    margin = (tile_size - out) // 2
    step = tile_step(tile_size, depth)
    shape = tf.shape(images)
    n, height, width = shape[0], shape[1], shape[2]
    channels = images.shape[-1]
    rows = (height + step - 1) // step
    cols = (width + step - 1) // step
    padded = mirror_pad(images, margin, (rows - 1) * step + tile_size - margin - height,
                        margin, (cols - 1) * step + tile_size - margin - width)
    patches = tf.image.extract_patches(
        padded, sizes=[1, tile_size, tile_size, 1], strides=[1, step, step, 1],
        rates=[1, 1, 1, 1], padding="VALID")
    tiles = tf.reshape(patches, [-1, tile_size, tile_size, channels])
    logits = unet(tiles, training=training)[:, :step, :step, :]
    classes = tf.shape(logits)[-1]
    logits = tf.reshape(logits, [n, rows, cols, step, step, classes])
    logits = tf.transpose(logits, [0, 1, 3, 2, 4, 5])
    return tf.reshape(logits, [n, rows * step, cols * step, classes])[:, :height, :width, :]


class OverlapTileUNet(keras.Model):
    """A valid-padding U-Net whose logits have the size of its input (module docstring).

    `unet` is the `build_unet(padding="valid")` model (its weights are this
    model's weights); `train_tile` None or 0: one mirrored tile per image; an
    int: overlap tiles of that input size.
    """

    def __init__(self, unet, train_tile=None, **kwargs):
        super().__init__(name=kwargs.pop("name", "unet_overlap_tile"), **kwargs)
        self.unet = unet
        self.train_tile = train_tile or None
        if self.train_tile is not None:
            tile_step(self.train_tile, model_depth(unet))  # ConfigError for a bad tile
        self.built = True  # all weights are the (built) functional U-Net's

    def call(self, images, training=False):
        if self.train_tile is None:
            return whole_image_logits(self.unet, images, training)
        return tiled_logits(self.unet, images, self.train_tile, training)


# --------------------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------------------


def split_options(model):
    """(build_unet kwargs, tiling options) of config.model; ConfigError for unknown keys."""
    options, tiling = OPTIONS.split(model)
    if tiling["eval_rotations"] not in DIHEDRAL_COUNTS:
        raise ConfigError(f"--eval-rotations must be one of "
                          f"{', '.join(map(str, DIHEDRAL_COUNTS))}; "
                          f"got {tiling['eval_rotations']!r}")
    depth = options.get("depth", 4)
    if tiling["tile_size"] is None and isinstance(depth, int) and depth >= 1:
        tiling["tile_size"] = 572 if depth == 4 else valid_input_sizes(572, depth, 1)[0]
    return options, tiling


def build(config, num_classes):
    options, tiling = split_options(config.model)
    if config.weights not in (None, "none", "auto"):
        raise ConfigError(f"--weights {config.weights}: the U-Net trains from scratch (random "
                          "initialisation, as the paper); use --init-from RUN_DIR to start from "
                          "a run")
    unet = build_unet(input_shape=(None, None, 1), num_classes=num_classes, **options)
    notes = {"weights_used": "none (random initialisation, as the paper)"}
    if options.get("padding", "valid") == "same":
        notes["geometry"] = "padding='same': output = input size, plain prediction"
        return unet, notes
    tile = tiling["tile_size"]
    depth = model_depth(unet)
    tile_step(tile, depth)  # ConfigError naming the valid sizes, or a larger tile
    network = OverlapTileUNet(unet, tiling["train_tile"])
    notes["geometry"] = (
        f"valid U-Net, border {border(depth)} px mirrored: training on "
        + (f"{network.train_tile}-pixel overlap tiles" if network.train_tile else
           "one mirrored tile per image")
        + f"; evaluation/SavedModel: overlap tiles of {tile} ({output_size(tile, depth)} out)")
    return network, notes


def make_predict_fn(task, config):
    """uint8 images [B, H, W, 3] of any size -> probabilities [B, H, W, K]: overlap-tile,
    averaged over `eval_rotations` orientations."""
    _, tiling = split_options(config.model)
    network, rotations = task.network, tiling["eval_rotations"]
    if not isinstance(network, OverlapTileUNet):

        def plain(inputs):
            logits = network(inputs, training=False)
            return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

        return lambda images: predict_dihedral(plain, task.preprocess(images), rotations)
    unet, tile, per_pass = network.unet, tiling["tile_size"], tiling["tiles_per_pass"]

    def tiled(inputs):
        return predict_tiled_batch(unet, inputs, tile, per_pass)

    return lambda images: predict_dihedral(tiled, task.preprocess(images), rotations)


def weight_map(labels, w0=10.0, sigma=5.0, class_weights=None):
    """The paper's loss weights (Eq. 2) of labels with cells 0 and membranes 1
    (`unet_tf.border_weight_map` of the cell pixels; ignored pixels count as border)."""
    labels = np.asarray(labels)
    if labels.ndim == 3 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    return border_weight_map(labels == 0, w0=w0, sigma=sigma, class_weights=class_weights)


def default_preset(argv):
    """`isbi_unet` when --data-dir is given without --preset/--dataset, else the generated one."""
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    if "--data-dir" in given and not given & {"--preset", "--dataset"}:
        return ISBI_PRESET
    return DEFAULT_PRESET


FAMILY = ModelFamily(
    name="unet", build=build, preprocess=preprocess, image_fill=(0.0, 0.0, 0.0),
    make_predict_fn=make_predict_fn, weight_map=weight_map, options=OPTIONS,
)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    return cli.main(argv, prog=PROG, description=__doc__, presets=PRESETS,
                    default_preset=default_preset(argv), family=FAMILY)


if __name__ == "__main__":
    sys.exit(main())
