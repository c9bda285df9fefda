"""Multi-scale and flipped inference: equal to the plain softmax at one scale
without flipping, the flip and scale averaging checked against a NumPy
recomputation, inside a tf.function with dynamic H and W, and in a reloaded
SavedModel that also serves the plain logits for any input size (the ASPP
image-pooling branch resized at run time)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import build_deeplabv3plus, predict_labels, predict_multiscale, scale_dimension
from segcore.errors import ConfigError

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    model = build_deeplabv3plus(num_classes=NUM_CLASSES, backbone="mobilenetv2", alpha=0.35)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # random statistics, so that the logits are not flat
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.1, mean.shape),
                               rng.uniform(0.5, 2.0, variance.shape)])
    logits = model.get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 30.0, bias])  # confident, varied predictions
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(4).normal(size=(2, 33, 47, 3)).astype("float32")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_scale_dimension_is_the_reference_formula():
    assert [int(scale_dimension(513, s)) for s in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)] == [
        257, 385, 513, 641, 769, 897]
    assert [int(scale_dimension(n, 0.5)) for n in (33, 47, 366, 500)] == [17, 24, 183, 250]


def test_one_scale_without_flip_equals_plain_softmax(model, images):
    probabilities = predict_multiscale(model, images, scales=(1.0,), flip=False).numpy()
    plain = softmax(model(images, training=False).numpy())
    assert probabilities.shape == (2, 33, 47, NUM_CLASSES)
    np.testing.assert_allclose(probabilities, plain, rtol=1e-5, atol=1e-6)
    assert plain.std() > 0.05  # far from the uniform 1 / NUM_CLASSES
    np.testing.assert_array_equal(predict_labels(model, images).numpy(), plain.argmax(axis=-1))


def test_flip_averages_the_mirrored_prediction(model, images):
    probabilities = predict_multiscale(model, images, scales=(1.0,), flip=True).numpy()
    plain = softmax(model(images, training=False).numpy())
    mirrored = softmax(model(images[:, :, ::-1].copy(), training=False).numpy())[:, :, ::-1]
    np.testing.assert_allclose(probabilities, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    assert np.abs(plain - mirrored).max() > 0.05  # the flip changes the prediction


def test_scales_are_averaged_at_the_input_size(model, images):
    probabilities = predict_multiscale(model, images, scales=(0.5, 1.0), flip=False).numpy()
    half = tf.compat.v1.image.resize_bilinear(images, [17, 24], align_corners=True)
    half_logits = model(half, training=False)
    assert half_logits.shape == (2, 17, 24, NUM_CLASSES)
    back = tf.compat.v1.image.resize_bilinear(half_logits, [33, 47], align_corners=True).numpy()
    # align_corners: corner pixels and every second pixel map onto the half-size grid
    np.testing.assert_allclose(back[:, ::2, ::2], half_logits.numpy()[:, :, :], rtol=1e-5,
                               atol=1e-5)
    expected = (softmax(back) + softmax(model(images, training=False).numpy())) / 2
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_in_a_tf_function_with_dynamic_size_and_a_saved_model(model, tmp_path):
    scales = (0.75,)
    signature = [tf.TensorSpec([None, None, None, 3], tf.float32)]
    module = tf.Module()
    # Track the variables only: tracking the Keras model would also trace every layer.
    module.weights = list(model.weights)
    module.serve = tf.function(lambda images: model(images, training=False),
                               input_signature=signature)
    module.multiscale = tf.function(
        lambda images: predict_multiscale(model, images, scales=scales, flip=True),
        input_signature=signature,
    )
    rng = np.random.default_rng(5)
    inputs = [rng.normal(size=(1, h, w, 3)).astype("float32") for h, w in [(33, 47), (41, 29)]]
    eager = [predict_multiscale(model, x, scales=scales, flip=True).numpy() for x in inputs]
    for x, expected in zip(inputs, eager):
        np.testing.assert_allclose(module.multiscale(tf.constant(x)).numpy(), expected,
                                   rtol=1e-5, atol=1e-6)
    assert len(module.multiscale._list_all_concrete_functions()) == 1  # one trace, both sizes

    tf.saved_model.save(module, str(tmp_path / "deeplab"))
    reloaded = tf.saved_model.load(str(tmp_path / "deeplab"))
    for x, expected in zip(inputs, eager):
        served = reloaded.multiscale(tf.constant(x)).numpy()
        assert served.shape == x.shape[:3] + (NUM_CLASSES,)
        np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
        logits = reloaded.serve(tf.constant(x)).numpy()
        assert logits.shape == x.shape[:3] + (NUM_CLASSES,)
        np.testing.assert_allclose(logits, model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scales", [(), (0.5, 0.0), (-1.0,)])
def test_bad_scales(model, images, scales):
    with pytest.raises(ConfigError, match="scales"):
        predict_multiscale(model, images, scales=scales)
