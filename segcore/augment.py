"""Joint image/mask augmentation that runs inside the training step (on the accelerator).

One random draw per image gives one affine map (random scale, crop position,
left-right flip, rotation) applied to the image (bilinear), the mask (nearest
neighbour; pixels from outside the image get the ignore label) and an optional
per-pixel weight map (bilinear; outside -> 0), with
`tf.raw_ops.ImageProjectiveTransformV3` (the kernel behind Keras' RandomZoom /
RandomRotation). Keras 3.15's augmentation layers are not used because their
segmentation-mask paths are not right for this: RandomZoom and RandomRotation
do not transform masks, and RandomCrop resizes masks through the image path
(bilinear) when the crop is larger than the input.

Photometric jitter (brightness, contrast, saturation) is drawn per image and
touches the image only.

Randomness: with `seed` (a shape-[2] integer tensor; the training step passes one
made of the run seed and the step number, `segcore.task`) every draw is a
stateless function of it, so a resumed run augments each step as the
uninterrupted one did; without it the global generator is used.
"""

import dataclasses
import math

import tensorflow as tf

from segcore.data.info import IGNORE_LABEL
from segcore.errors import ConfigError


@dataclasses.dataclass
class AugmentConfig:
    """What the training step does to each batch (all off = identity)."""

    scale: tuple = (1.0, 1.0)     # random zoom range; DeepLab: (0.5, 2.0)
    flip: bool = False            # left-right flip with probability 1/2
    rotation: float = 0.0         # max rotation in degrees (uniform in [-r, r])
    brightness: float = 0.0       # max additive brightness change, in [0, 255] units
    contrast: float = 0.0         # contrast factor in [1 - c, 1 + c]
    saturation: float = 0.0       # saturation factor in [1 - s, 1 + s]
    elastic_sigma: float = 0.0    # U-Net elastic deformation (px std on a 3x3 grid); 0 = off
    crop_size: tuple = None       # (H, W) random crops of the scaled batch; None = the batch's size

    def __post_init__(self):
        if self.crop_size is not None:
            crop = tuple(self.crop_size)
            if len(crop) != 2 or not all(isinstance(c, int) and c > 0 for c in crop):
                raise ConfigError(f"augment crop_size must be two positive integers (H, W); "
                                  f"got {self.crop_size!r}")
            self.crop_size = crop

    @property
    def geometric(self):
        return (tuple(self.scale) != (1.0, 1.0) or self.flip or self.rotation > 0
                or self.crop_size is not None)

    @property
    def photometric(self):
        return self.brightness > 0 or self.contrast > 0 or self.saturation > 0


# Index of each draw in `draw_seed`: the draws are independent of each other.
SCALE, ANGLE, FLIP, OFFSET_Y, OFFSET_X, ELASTIC, BRIGHTNESS, CONTRAST, SATURATION = range(9)


def draw_seed(seed, draw):
    """The stateless seed of draw number `draw` made from the step's `seed` (None: None)."""
    if seed is None:
        return None
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), draw)


def _uniform(shape, low, high, seed, draw):
    if seed is None:
        return tf.random.uniform(shape, low, high, dtype=tf.float32)
    return tf.random.stateless_uniform(shape, draw_seed(seed, draw), low, high, dtype=tf.float32)


def random_affine(batch, height, width, in_height, in_width, config, seed=None):
    """[B, 8] projective transforms mapping output pixels to input pixels."""
    f32 = tf.float32
    lo, hi = config.scale
    scale = _uniform([batch], lo, hi, seed, SCALE)
    angle = _uniform([batch], -1.0, 1.0, seed, ANGLE) * (config.rotation * math.pi / 180)
    flip = (tf.cast(_uniform([batch], 0.0, 1.0, seed, FLIP) < 0.5, f32) if config.flip
            else tf.zeros([batch]))
    h, w = tf.cast(height, f32), tf.cast(width, f32)
    ih, iw = tf.cast(in_height, f32), tf.cast(in_width, f32)
    # Random crop of the scaled input: the crop window moves over the scaled image,
    # or the scaled image over the window when it is smaller (then padding shows).
    slack_y, slack_x = ih * scale - h, iw * scale - w
    offset_y = _uniform([batch], 0.0, 1.0, seed, OFFSET_Y) * slack_y
    offset_x = _uniform([batch], 0.0, 1.0, seed, OFFSET_X) * slack_x
    # Output pixel centre (x, y) -> flipped -> rotated about the crop centre -> scaled.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = tf.cos(angle), tf.sin(angle)
    sx = 1 - 2 * flip  # -1 flips x about the centre
    # x' = sx * (x - cx), y' = y - cy; rotate: (cos x' - sin y', sin x' + cos y');
    # input = ((rotated + centre + offset + 0.5) / scale) - 0.5
    a0 = sx * cos / scale
    a1 = -sin / scale
    b0 = sx * sin / scale
    b1 = cos / scale
    tx = (cx + offset_x + 0.5) / scale - 0.5
    ty = (cy + offset_y + 0.5) / scale - 0.5
    a2 = tx - a0 * cx - a1 * cy
    b2 = ty - b0 * cx - b1 * cy
    zeros = tf.zeros([batch])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def _transform(images, transforms, size, fill, interpolation):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=size,
        fill_value=tf.constant(fill, images.dtype), interpolation=interpolation,
        fill_mode="CONSTANT",
    )


def photometric(images, config, seed=None):
    """Per-image brightness, contrast and saturation jitter on float [0, 255] images."""
    batch = tf.shape(images)[0]
    shape = [batch, 1, 1, 1]
    if config.brightness > 0:
        images = images + _uniform(shape, -config.brightness, config.brightness, seed, BRIGHTNESS)
    if config.contrast > 0:
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        factor = _uniform(shape, 1 - config.contrast, 1 + config.contrast, seed, CONTRAST)
        images = (images - mean) * factor + mean
    if config.saturation > 0:
        grey = tf.reduce_mean(images, axis=-1, keepdims=True)
        factor = _uniform(shape, 1 - config.saturation, 1 + config.saturation, seed,
                          SATURATION)
        images = (images - grey) * factor + grey
    return tf.clip_by_value(images, 0.0, 255.0)


class Augmenter:
    """Callable `(images, labels, weights) -> (images, labels, weights)` for a batch.

    images: [B, H, W, 3] uint8 or float in [0, 255]; labels: [B, H, W] integer;
    weights: [B, H, W] float or None. Output has `config.crop_size`, else the
    input's height and width: the random scale zooms, then a crop window of that
    size is taken at a random place (where the scaled image is smaller than the
    window, the window shows padding: ignore label, `image_fill`, weight 0; the
    reference DeepLab pads to the crop size the same way).
    `image_fill` is the RGB value of pixels from outside the image (the dataset
    mean, so that it is zero after mean subtraction).
    """

    def __init__(self, config, ignore_label=IGNORE_LABEL, image_fill=(0.0, 0.0, 0.0)):
        self.config = config
        self.ignore_label = ignore_label
        self.image_fill = tf.constant(image_fill, tf.float32)

    def __call__(self, images, labels, weights=None, seed=None):
        config = self.config
        images = tf.cast(images, tf.float32)
        if config.geometric:
            shape = tf.shape(images)
            batch, in_height, in_width = shape[0], shape[1], shape[2]
            height, width = config.crop_size or (in_height, in_width)
            transforms = random_affine(batch, height, width, in_height, in_width, config, seed)
            size = tf.stack([height, width])
            images = _transform(images - self.image_fill, transforms, size, 0.0, "BILINEAR")
            images = images + self.image_fill
            label_dtype = labels.dtype
            labels = _transform(tf.cast(labels[..., None], tf.float32), transforms, size,
                                float(self.ignore_label), "NEAREST")
            labels = tf.cast(labels[..., 0], label_dtype)
            if weights is not None:
                weights = _transform(tf.cast(weights[..., None], tf.float32), transforms, size,
                                     0.0, "BILINEAR")[..., 0]
        if config.elastic_sigma > 0:
            from segcore.elastic import elastic_deform  # U-Net only; imported on use
            images, labels, weights = elastic_deform(
                images, labels, weights, sigma=config.elastic_sigma,
                ignore_label=self.ignore_label, seed=draw_seed(seed, ELASTIC))
        if config.photometric:
            images = photometric(images, config, seed)
        return images, labels, weights
