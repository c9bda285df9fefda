"""Re-estimate batch-norm statistics on new data without changing what the network computes.

A BatchNormalization layer in inference mode computes

    y = gamma * (x - mean) / sqrt(variance + epsilon) + beta

with its stored moving statistics. Fine-tuning it in training mode normalises with
the statistics of each batch instead, so its output jumps at the first step when
the stored statistics are not those of the new data: a converted TFLite model,
whose batch norms were folded into the convolutions (`deeplab_tf.convert` stores
them as identities, mean 0 and variance 1), or a network trained on another
dataset. `recalibrate` measures each layer's input mean m and variance v over
images of the new data (the network run in inference mode, so every layer sees
what it will see at the start of training) and rewrites the layer as

    gamma' = gamma * s / s0,  beta' = beta + gamma * (m - mean) / s0,
    mean'  = m,               variance' = v,

with s0 = sqrt(variance + epsilon) and s = sqrt(v + epsilon): the same inference
function (the identity above, expanded), and in training mode, on batches like the
measured images, nearly the same output, so batch norm can be trained from where
the source network was.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from segcore.errors import ConfigError
from segcore.layers import all_layers


def batch_norm_layers(network):
    """The BatchNormalization layers of `network`, nested models' included."""
    return [layer for layer in all_layers(network)
            if isinstance(layer, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def _recording_inputs(layers):
    """While active, each layer's calls add the per-channel sum, sum of squares and
    count of its input to the returned dict {layer: [sum, sum of squares, count]}."""
    sums = {layer: [0.0, 0.0, 0] for layer in layers}
    originals = {}

    def recorder(layer, call):
        def call_and_record(inputs, *args, **kwargs):
            values = tf.reshape(tf.cast(inputs, tf.float64), [-1, inputs.shape[-1]])
            entry = sums[layer]
            entry[0] = entry[0] + tf.reduce_sum(values, 0).numpy()
            entry[1] = entry[1] + tf.reduce_sum(tf.square(values), 0).numpy()
            entry[2] += int(values.shape[0])
            return call(inputs, *args, **kwargs)

        return call_and_record

    for layer in layers:
        originals[layer] = layer.call
        layer.call = recorder(layer, layer.call)
    try:
        yield sums
    finally:
        for layer, call in originals.items():
            layer.call = call


def recalibrate(network, inputs):
    """Set every batch norm's statistics of `network` to those of `inputs` (an iterable
    of preprocessed input batches), keeping its inference function (module docstring).

    The network runs eagerly in inference mode on each batch. Returns the number of
    layers rewritten; a ConfigError when `inputs` is empty or a layer saw no input.
    """
    layers = batch_norm_layers(network)
    if not layers:
        return 0
    batches = 0
    with _recording_inputs(layers) as sums:
        for batch in inputs:
            network(batch, training=False)
            batches += 1
    if not batches:
        raise ConfigError("batch-norm recalibration: no input images")
    for layer in layers:
        total, squares, count = sums[layer]
        if not count:
            raise ConfigError(f"batch-norm recalibration: layer {layer.name} saw no input "
                              "(it is not on the network's path from its input)")
        mean = total / count
        variance = np.maximum(squares / count - mean * mean, 0.0)
        gamma = layer.gamma.numpy().astype(np.float64) if layer.scale else 1.0
        beta = layer.beta.numpy().astype(np.float64) if layer.center else 0.0
        old_mean = layer.moving_mean.numpy().astype(np.float64)
        old_scale = np.sqrt(layer.moving_variance.numpy().astype(np.float64) + layer.epsilon)
        scale = np.sqrt(variance + layer.epsilon)
        for kept, name, changed in ((layer.scale, "gamma (scale=False)", scale != old_scale),
                                    (layer.center, "beta (center=False)", mean != old_mean)):
            if not kept and np.any(changed):
                raise ConfigError(f"batch-norm recalibration: layer {layer.name} has no {name}, "
                                  "so the new statistics cannot be compensated")
        if layer.scale:
            layer.gamma.assign((gamma * scale / old_scale).astype(np.float32))
        if layer.center:
            layer.beta.assign((beta + gamma * (mean - old_mean) / old_scale).astype(np.float32))
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return len(layers)
