"""Fused optimizers equal Keras' own, on one device and on two replicas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcore.optimizers import FusedAdam, FusedSGD


def train(optimizer, strategy, epochs=3):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer(), "mse")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    model.fit(x, x.sum(1, keepdims=True), batch_size=16, epochs=epochs, verbose=0, shuffle=False)
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("fused, plain", [
    (lambda: FusedAdam(1e-2), lambda: keras.optimizers.Adam(1e-2)),
    (lambda: FusedAdam(1e-2, weight_decay=0.1),
     lambda: keras.optimizers.Adam(1e-2, weight_decay=0.1)),
    (lambda: FusedSGD(1e-2, momentum=0.9), lambda: keras.optimizers.SGD(1e-2, momentum=0.9)),
    (lambda: FusedSGD(1e-2, momentum=0.9, nesterov=True),
     lambda: keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True)),
])
def test_fused_equals_keras(fused, plain, two_replica_strategy):
    one = tf.distribute.MirroredStrategy(["/cpu:0"])
    expected = train(plain, one)
    initial = train(plain, one, epochs=0)
    for strategy in (one, two_replica_strategy):
        got = train(fused, strategy)
        for a, b, start in zip(got, expected, initial):
            np.testing.assert_allclose(a, b, atol=1e-5)
            assert not np.allclose(b, start)  # training did move the weights
