"""Input preprocessing of the VGG16 encoder (the Keras/Caffe ImageNet convention)."""

import tensorflow as tf

from fcn_tf.vgg16 import VGG_MEAN_BGR


def preprocess(images):
    """uint8 or float RGB images in [0, 255] -> BGR, mean subtracted, float32.

    Equal to `keras.applications.vgg16.preprocess_input` ("caffe" mode) and to
    the reference's mean subtraction.
    """
    images = tf.cast(images, tf.float32)
    return images[..., ::-1] - tf.constant(VGG_MEAN_BGR, tf.float32)
