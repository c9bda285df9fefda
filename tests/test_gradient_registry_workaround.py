"""The custom-gradient registry work-around (segcore/gradient_registry.py) is still needed,
frees what it should, and the engine applies it."""

import gc
import weakref

import keras
import numpy as np
import tensorflow as tf

from segcore import gradient_registry


def _fit_a_small_network():
    """A weak reference to one of the float32 variables of a network trained (traced `fit`)
    and then deleted, with Keras' session cleared."""
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(2, 3, padding="same", name="score")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(4, 8, 8, 3)).astype("float32"), rng.integers(0, 2, (4, 8, 8)),
              batch_size=2, epochs=1, verbose=0)
    kernel = weakref.ref(model.get_layer("score").kernel.value)
    del model
    keras.backend.clear_session()
    gc.collect()
    return kernel


def test_written_for_this_tensorflow():
    assert tf.__version__ == gradient_registry.WRITTEN_FOR_TENSORFLOW, (
        f"TensorFlow is {tf.__version__}; segcore/gradient_registry.py was written for "
        f"{gradient_registry.WRITTEN_FOR_TENSORFLOW}: check whether a trained network is still "
        "kept alive without it (tensorflow/tensorflow issue 97697) and drop it if not")


def test_without_it_a_trained_network_outlives_its_model():
    before = gradient_registry.custom_gradient_names()
    kernel = _fit_a_small_network()
    added = gradient_registry.custom_gradient_names() - before
    assert added, "fit registered no custom gradient: the leak may be fixed, drop the work-around"
    assert kernel() is not None, "the variable was freed: the leak is fixed, drop the work-around"
    assert gradient_registry.release(added) == len(added)
    gc.collect()
    assert kernel() is None  # the registry was what kept it


def _register_a_custom_gradient():
    """Trace a graph with a `tf.custom_gradient` op; returns the name it registered."""
    @tf.custom_gradient
    def doubled(x):
        return 2 * x, lambda upstream: 2 * upstream

    before = gradient_registry.custom_gradient_names()
    tf.function(doubled).get_concrete_function(tf.TensorSpec([2]))
    (name,) = gradient_registry.custom_gradient_names() - before
    return name


def test_the_block_frees_the_network_and_drops_only_its_own_entries():
    earlier = _register_a_custom_gradient()
    with gradient_registry.releasing_custom_gradients():
        kernel = _fit_a_small_network()
        added = gradient_registry.custom_gradient_names() - {earlier}
    gc.collect()
    assert kernel() is None
    assert added and not added & gradient_registry.custom_gradient_names()
    assert earlier in gradient_registry.custom_gradient_names()


def test_a_training_run_of_the_engine_leaves_no_custom_gradient(tmp_path):
    from fcn_tf import train

    before = gradient_registry.custom_gradient_names()
    assert train.main(["--preset", "smoke", "--runs-dir", str(tmp_path), "--name", "leak",
                       "--precision", "fp32", "--no-export"]) == 0
    assert gradient_registry.custom_gradient_names() == before
