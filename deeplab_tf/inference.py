"""Multi-scale and flipped inference (DeepLabv3 section 4.3, "Inference strategy").

`predict_multiscale` follows research/deeplab `model.predict_labels_multi_scale`:
for each scale s the image is resized bilinearly (align_corners=True) to
``int((n - 1) * s + 1)`` pixels per side (`scale_dimension`), the logits are
resized back to the input size, and the softmax probabilities of all scales (and
of the left-right flipped images, flipped back) are averaged. The reference
returns the argmax; this returns the averaged probabilities, float32
[batch, H, W, num_classes].

Everything is TF ops on dynamic shapes: it runs eagerly, inside a tf.function
with an input signature of unknown H and W, and so in an exported SavedModel.
"""

import tensorflow as tf

from segcore.errors import ConfigError
from segcore.inference import resize_aligned, scale_dimension  # public here too

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def predict_multiscale(model, images, scales=DEFAULT_SCALES, flip=True):
    """Average softmax probabilities of `model` over `scales` (and flips) at the input size.

    model: a Keras model from images [B, H, W, 3] to logits [B, h, w, C] (any
      h, w; they are resized to H x W).
    images: float tensor [B, H, W, 3], preprocessed for `model`.
    Returns float32 probabilities [B, H, W, C].
    """
    scales = tuple(scales)
    if not scales or any(not s > 0 for s in scales):
        raise ConfigError(
            f"scales must be a non-empty sequence of positive numbers; got {scales!r}")
    images = tf.convert_to_tensor(images)
    size = tf.shape(images)[1:3]
    total = None
    count = 0
    for scale in scales:
        if scale == 1.0:
            scaled = images
        else:
            scaled = tf.cast(resize_aligned(images, scale_dimension(size, scale)), images.dtype)
        variants = [(scaled, False)] + ([(tf.reverse(scaled, axis=[2]), True)] if flip else [])
        for batch, flipped in variants:
            logits = tf.cast(model(batch, training=False), tf.float32)
            if flipped:
                logits = tf.reverse(logits, axis=[2])
            probabilities = tf.nn.softmax(resize_aligned(logits, size), axis=-1)
            total = probabilities if total is None else total + probabilities
            count += 1
    return total / float(count)


def predict_labels(model, images, scales=(1.0,), flip=False):
    """Argmax labels [B, H, W] (int32) of `predict_multiscale`."""
    return tf.argmax(predict_multiscale(model, images, scales, flip), axis=-1, output_type=tf.int32)
