"""DeepLab's speed paths change no number: its fused batch norm
(`deeplab_tf.aspp.FusedBatchNormalization`) against Keras's own BatchNormalization code
path, layer by layer and on a whole network's training step (outputs, gradients, moving
averages), in float32 and mixed_bfloat16."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.aspp import FusedBatchNormalization, batch_norm
from deeplab_tf.atrous import AtrousConv2D
from deeplab_tf.atrous import conv2d as atrous_conv2d
from deeplab_tf.model import build_deeplabv3plus
from segcore.layers import all_layers
from segcore.precision import dtype_policy


def _layer(policy, shape, momentum=0.9, epsilon=1e-5, seed=0):
    rng = np.random.default_rng(seed)
    with dtype_policy(policy):
        layer = FusedBatchNormalization(momentum=momentum, epsilon=epsilon)
        layer.build(shape)
    channels = shape[-1]
    layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.5, channels),
                       rng.normal(0, 0.5, channels), rng.uniform(0.5, 2.0, channels)])
    return layer


def _step(layer, x, upstream, fused):
    """Output, gradients (input, gamma, beta) and moving averages after one training call."""
    layer.fused = fused
    saved = [v.numpy() for v in layer.weights]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    moving = [layer.moving_mean.numpy(), layer.moving_variance.numpy()]
    for variable, value in zip(layer.weights, saved):
        variable.assign(value)
    return [np.asarray(tf.cast(t, tf.float32)) for t in [y, *grads]] + moving


@pytest.mark.parametrize("shape", [(2, 3, 3, 8), (1, 1, 1, 4), (2, 17, 9, 16)])
def test_fused_batch_norm_matches_keras_float32(shape):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(1.0, 2.0, shape), tf.float32)
    upstream = tf.constant(rng.normal(0, 1, shape), tf.float32)
    layer = _layer("float32", shape)
    fused, keras_path = _step(layer, x, upstream, True), _step(layer, x, upstream, False)
    names = ["output", "d input", "d gamma", "d beta", "moving mean", "moving variance"]
    for name, a, b in zip(names, fused, keras_path):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    # The variance correction matters: with n = 18 values per channel the kernel's
    # Bessel-corrected variance differs from Keras's by 6 %, far outside the tolerance.
    n = shape[0] * shape[1] * shape[2]
    if n > 1:
        variance = x.numpy().reshape(-1, shape[-1]).var(axis=0)
        moving = layer.moving_variance.numpy() * 0.9 + variance * 0.1
        np.testing.assert_allclose(fused[5], moving, rtol=1e-5)


def test_fused_batch_norm_matches_keras_mixed_bfloat16():
    shape = (2, 9, 9, 16)
    rng = np.random.default_rng(2)
    x = tf.cast(tf.constant(rng.normal(1.0, 2.0, shape), tf.float32), tf.bfloat16)
    upstream = tf.constant(rng.normal(0, 1, shape), tf.float32)
    layer = _layer("mixed_bfloat16", shape)
    assert layer.compute_dtype == "bfloat16"
    fused, keras_path = _step(layer, x, upstream, True), _step(layer, x, upstream, False)
    assert fused[0].dtype == np.float32  # compared as float32; the layer's output is bfloat16
    # bfloat16 has 8 significant bits: outputs within 2 ulp at |y| ~ 4, statistics float32.
    np.testing.assert_allclose(fused[0], keras_path[0], rtol=2 ** -7, atol=2 ** -6)
    for name, a, b in zip(["d gamma", "d beta"], fused[2:4], keras_path[2:4]):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2, err_msg=name)
    np.testing.assert_allclose(fused[4], keras_path[4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused[5], keras_path[5], rtol=1e-4, atol=1e-6)


def test_inference_and_frozen_layers_use_keras_path_exactly():
    shape = (2, 5, 5, 8)
    x = tf.constant(np.random.default_rng(3).normal(size=shape), tf.float32)
    layer = _layer("float32", shape)
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    plain.build(shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x, training=False), plain(x, training=False))
    layer.trainable = plain.trainable = False
    np.testing.assert_array_equal(layer(x, training=True), plain(x, training=True))


def test_batch_norm_factory_keeps_keras_class_and_config():
    layer = batch_norm("aspp0_bn", momentum=0.997, epsilon=1.001e-5)
    assert isinstance(layer, keras.layers.BatchNormalization)
    assert (layer.momentum, layer.epsilon, layer.name) == (0.997, 1.001e-5, "aspp0_bn")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is FusedBatchNormalization and clone.epsilon == 1.001e-5


def _network(policy):
    with dtype_policy(policy):
        return build_deeplabv3plus(num_classes=3, backbone="mobilenetv2", alpha=0.35,
                                   input_shape=(33, 33, 3), dropout=0.0)


def _training_call(network, images, labels, fused):
    """Logits, loss gradients of every trainable variable and the moving averages after
    one training call; the weights are restored afterwards."""
    layers = [layer for layer in all_layers(network) if isinstance(layer, FusedBatchNormalization)]
    for layer in layers:
        layer.fused = fused
    saved = [v.numpy() for v in network.weights]
    with tf.GradientTape() as tape:
        logits = network(tf.cast(images, network.inputs[0].dtype), training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True))
    grads = tape.gradient(loss, network.trainable_variables)
    moving = [v.numpy() for layer in layers for v in (layer.moving_mean, layer.moving_variance)]
    for variable, value in zip(network.weights, saved):
        variable.assign(value)
    return (np.asarray(logits, np.float64), [np.asarray(g, np.float64) for g in grads],
            np.concatenate(moving).astype(np.float64))


def _relative(a, b):
    if isinstance(a, list):
        return np.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(a, b))) / \
            np.sqrt(sum((q ** 2).sum() for q in b))
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def float64_reference():
    """A DeepLabv3+ (MobileNetV2 0.35: every BN kind of a backbone and head, 65 BN layers)
    and its training call in float64 on Keras's batch norm: the exact figures both
    float32 code paths are measured against."""
    keras.utils.set_random_seed(0)
    network = _network("float32")
    exact = _network("float64")
    exact.set_weights(network.get_weights())
    rng = np.random.default_rng(4)
    images = tf.constant(rng.uniform(-1, 1, (2, 33, 33, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, 3, (2, 33, 33)))
    return network, images, labels, _training_call(exact, tf.cast(images, tf.float64), labels,
                                                   False)


def test_network_training_step_unchanged_float32(float64_reference):
    """Fused against Keras's batch norm on a whole network's training call: logits and
    moving averages agree within float32 rounding; the loss gradients are no further from
    the float64 figures than Keras's own. (Each float32 path is ~1 % from float64 here:
    the ASPP image-pooling BN normalises 2 values per channel, which amplifies rounding;
    the two paths differ from each other by as much, not more.)"""
    source, images, labels, exact = float64_reference
    network = _network("float32")
    network.set_weights(source.get_weights())
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in all_layers(network)) == 65
    fused, plain = (_training_call(network, images, labels, f) for f in (True, False))
    assert _relative(fused[0], plain[0]) < 1e-3            # logits
    assert _relative(fused[2], plain[2]) < 1e-6            # moving averages
    fused_error, plain_error = _relative(fused[1], exact[1]), _relative(plain[1], exact[1])
    assert fused_error < 1.25 * plain_error + 1e-3, (fused_error, plain_error)
    assert plain_error < 0.03


def test_network_training_step_unchanged_mixed_bfloat16(float64_reference):
    """The same under mixed_bfloat16, against float64: this small random network's bf16
    logits are ~70 % rounding on either path (and its gradients more), so only "no
    further from float64 than Keras's path" can be asserted, for logits and moving
    averages (statistics are float32 on both paths); tight bf16 checks are per layer above."""
    source, images, labels, exact = float64_reference
    network = _network("mixed_bfloat16")
    network.set_weights(source.get_weights())
    fused, plain = (_training_call(network, images, labels, f) for f in (True, False))
    for i, slack in ((0, 0.05), (2, 1e-5)):
        fused_error, plain_error = _relative(fused[i], exact[i]), _relative(plain[i], exact[i])
        assert fused_error < 1.25 * plain_error + slack, (i, fused_error, plain_error)
    assert _relative(fused[2], exact[2]) < 1e-3


# --- deeplab_tf.atrous: a dilated Conv2D without Keras's space-to-batch ---------------------

def _graph_op_types(layer, shape):
    function = tf.function(lambda x: layer(x)).get_concrete_function(tf.TensorSpec(shape))
    return {op.type for op in function.graph.get_operations()}


def test_keras_dilated_conv2d_still_uses_space_to_batch():
    """What `AtrousConv2D` works around: fails when Keras / TensorFlow run a dilated
    Conv2D natively themselves (then drop deeplab_tf/atrous.py)."""
    layer = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2)
    types = _graph_op_types(layer, (1, 9, 9, 3))
    assert {"SpaceToBatchND", "BatchToSpaceND"} <= types, types
    native = _graph_op_types(AtrousConv2D(4, 3, padding="same", dilation_rate=2), (1, 9, 9, 3))
    assert "SpaceToBatchND" not in native and "Conv2D" in native, native


@pytest.mark.parametrize("rate,padding,bias,shape", [
    (2, "same", True, (2, 17, 17, 8)), (4, "same", False, (1, 33, 21, 8)),
    (8, "same", True, (2, 13, 13, 8)),   # rate 8 on 13 pixels: the taps mostly fall on padding
    (3, "valid", True, (1, 16, 15, 8)), ((2, 3), "same", True, (1, 11, 14, 8)),
])
def test_atrous_conv2d_equals_keras_conv2d(rate, padding, bias, shape):
    """Same output and same gradients (input, kernel, bias) as Keras's Conv2D with the same
    weights, within float32 rounding (the weights are N(0, 1), so values reach ~50); rate 1
    keeps Keras's layer."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=shape), tf.float32)
    options = dict(filters=6, kernel_size=3, padding=padding, dilation_rate=rate, use_bias=bias)
    reference, atrous = keras.layers.Conv2D(**options), AtrousConv2D(**options)
    reference.build(shape)
    atrous.build(shape)
    atrous.set_weights([rng.normal(size=w.shape) for w in reference.get_weights()])
    reference.set_weights(atrous.get_weights())
    results = []
    for layer in (reference, atrous):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_variables])])
    assert results[0][0].shape == results[1][0].shape
    for name, a, b in zip(["output", "d input", "d kernel", "d bias"], *results):
        # Sums of up to 72 products in another order: rounding relative to the largest value.
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5 * np.abs(a).max(), err_msg=name)
    assert type(atrous_conv2d(6, 3, dilation_rate=1)) is keras.layers.Conv2D
    assert type(atrous_conv2d(6, 3, dilation_rate=rate)) is AtrousConv2D


def test_atrous_conv2d_serialises_and_runs_mixed_bfloat16():
    layer = atrous_conv2d(4, 3, padding="same", dilation_rate=4, name="conv5_block3_2_conv")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is AtrousConv2D and clone.dilation_rate == (4, 4)
    with dtype_policy("mixed_bfloat16"):
        layer = AtrousConv2D(4, 3, padding="same", dilation_rate=2)
        y = layer(tf.ones((1, 9, 9, 3)))
    assert y.dtype == tf.bfloat16 and layer.kernel.dtype == tf.float32


def test_resnet_dilated_convolutions_are_atrous_conv2d():
    """At OS16 exactly the three 3x3s of conv5 are dilated (rates 2, 4, 8 with multi-grid):
    those, and only those, are AtrousConv2D; the network's graph has no space-to-batch
    outside the depthwise ASPP branches."""
    network = build_deeplabv3plus(num_classes=3, backbone="resnet50", input_shape=(65, 65, 3))
    atrous = {layer.name: layer.dilation_rate
              for layer in all_layers(network) if isinstance(layer, AtrousConv2D)}
    assert atrous == {"conv5_block1_2_conv": (2, 2), "conv5_block2_2_conv": (4, 4),
                      "conv5_block3_2_conv": (8, 8)}
    function = tf.function(lambda x: network(x, training=True)).get_concrete_function(
        tf.TensorSpec((1, 65, 65, 3)))
    scopes = {op.name.split("/")[1] for op in function.graph.get_operations()
              if op.type == "SpaceToBatchND"}
    assert {re.sub(r"_\d+$", "", s) for s in scopes} == {
        "aspp1_depthwise", "aspp2_depthwise", "aspp3_depthwise"}, scopes
