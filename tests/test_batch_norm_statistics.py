"""segcore.batch_norm_statistics: statistics re-estimated, the inference function kept."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcore.batch_norm_statistics import recalibrate
from segcore.errors import ConfigError


def small_network(nested=False, scale=True):
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv1")(image)
    x = keras.layers.BatchNormalization(name="bn1", scale=scale)(x)
    x = keras.layers.ReLU()(x)
    inner_input = keras.Input((None, None, 4))
    y = keras.layers.Conv2D(5, 1, use_bias=False, name="conv2")(inner_input)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    block = keras.Model(inner_input, y, name="block")
    x = block(x) if nested else block.layers[-1](block.layers[-2](x))
    network = keras.Model(image, x)
    rng = np.random.default_rng(0)
    for layer in (network.get_layer("bn1"), block.get_layer("bn2")):
        # stored statistics far from the data's: gamma and variance in [0.5, 2], beta and mean
        # N(0, 1)
        positive = {"gamma", "moving_variance"}
        layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32)
                           if any(w.path.endswith(name) for name in positive)
                           else rng.normal(0.0, 1.0, w.shape).astype(np.float32)
                           for w in layer.weights])
    return network


@pytest.mark.parametrize("nested", [False, True])
def test_statistics_are_the_data_s_and_the_function_is_kept(nested):
    network = small_network(nested)
    data = tf.random.stateless_normal([6, 9, 11, 3], seed=[1, 2]) * 3.0 + 1.0
    before = network(data, training=False).numpy()
    conv1_out = network.get_layer("conv1")(data).numpy().reshape(-1, 4)

    assert recalibrate(network, [data[:3], data[3:]]) == 2

    bn1 = network.get_layer("bn1")
    np.testing.assert_allclose(bn1.moving_mean.numpy(), conv1_out.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), conv1_out.var(0), rtol=1e-4)
    np.testing.assert_allclose(network(data, training=False).numpy(), before, rtol=1e-4, atol=1e-4)
    # In training mode on the measured images as one batch, the batch statistics are the
    # stored ones: the output is the inference output (the point of recalibrating).
    np.testing.assert_allclose(network(data, training=True).numpy(), before, rtol=1e-3, atol=1e-3)


def test_without_recalibration_training_mode_differs():
    """The check above can fail: the random stored statistics are far from the data's."""
    network = small_network()
    data = tf.random.stateless_normal([6, 9, 11, 3], seed=[1, 2]) * 3.0 + 1.0
    difference = np.abs(network(data, training=True) - network(data, training=False)).max()
    assert difference > 0.5


def test_no_images_and_uncompensable_layers_are_errors():
    with pytest.raises(ConfigError, match="no input images"):
        recalibrate(small_network(), [])
    with pytest.raises(ConfigError, match="bn1 has no gamma"):
        recalibrate(small_network(scale=False), [tf.ones([1, 4, 4, 3])])


def test_the_engine_recalibrates_on_the_first_training_images():
    """segcore.training.recalibrate_batch_norm: the first `count` raw training pairs (or
    triples with a weight map), preprocessed, one image per batch."""
    from segcore.training import recalibrate_batch_norm

    images = tf.random.stateless_uniform([5, 8, 10, 3], seed=[3, 4], maxval=255.0)
    triples = tf.data.Dataset.from_tensor_slices(
        (images, tf.zeros([5, 8, 10]), tf.ones([5, 8, 10])))
    network, expected = small_network(), small_network()
    expected.set_weights(network.get_weights())
    record = recalibrate_batch_norm(network, lambda x: x / 255.0, triples, 3)
    recalibrate(expected, [images[i:i + 1] / 255.0 for i in range(3)])
    assert record == {"layers": 2, "images": 3}
    for a, b in zip(network.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ConfigError, match="--recalibrate-batch-norm must be >= 0"):
        recalibrate_batch_norm(network, lambda x: x, triples, -1)
