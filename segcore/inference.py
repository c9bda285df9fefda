"""Prediction at the labels' resolution: resize in, predict, resize probabilities back.

`make_predict_fn(task, input_size)` returns a function from uint8 images
[B, H, W, 3] of any size to float32 class probabilities [B, H, W, C] at the
same H x W. When the network was trained on a fixed `input_size`, images are
resized to it (bilinear) and the probabilities resized back (bilinear) before
the argmax: labels are never resized. The same function is what the exported
SavedModel serves.
"""

import tensorflow as tf


def scale_dimension(size, scale):
    """research/deeplab `scale_dimension`: int((size - 1) * scale + 1) (a tensor), at least 1."""
    return tf.maximum(tf.cast((tf.cast(size, tf.float32) - 1.0) * scale + 1.0, tf.int32), 1)


def resize_aligned(values, size):
    """Bilinear resize with align_corners (corner pixels map to corner pixels), as
    research/deeplab resizes images and logits; float32."""
    return tf.cast(tf.raw_ops.ResizeBilinear(images=values, size=size, align_corners=True),
                   tf.float32)


def make_predict_fn(task, input_size=None):
    """uint8 [B, H, W, 3] -> float32 probabilities [B, H, W, C] (see module doc)."""

    def predict(images):
        size = tf.shape(images)[1:3]
        inputs = tf.cast(images, tf.float32)
        if input_size is not None:
            inputs = tf.image.resize(inputs, input_size, method="bilinear")
        probabilities = tf.nn.softmax(tf.cast(task(inputs, training=False), tf.float32), axis=-1)
        if input_size is not None:
            probabilities = tf.image.resize(probabilities, size, method="bilinear")
        return probabilities

    return predict
