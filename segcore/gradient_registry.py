"""Work-around: TensorFlow 2.21 keeps every network trained in a process alive.

Keras 3's train step reduces across replicas with `ReplicaContext.all_reduce`
(also under the default strategy), which is a `tf.custom_gradient`. Traced into a
graph (every `model.fit`), `tf.custom_gradient` registers its gradient function in
TensorFlow's process-wide gradient registry under a fresh name
("CustomGradient-<n>") and never removes it; the function's closure holds the
traced step's tensors, so the step's FuncGraph, and through its captures every
variable of the network and its optimiser, stay alive after the model is deleted
and `keras.backend.clear_session()` has run: a process that trains networks one after
another (a test suite, a notebook) holds all of them (an FCN-8s with its Adam slots alone: 1.6 GB).
Upstream: tensorflow/tensorflow issue 97697 (fixed by pull request 109334, after
2.21), keras-team/keras issue 20245, keras-team/tf-keras issue 286.

The registered functions are needed only while the step is being traced (its
gradient is built then, into the same graph). `releasing_custom_gradients()`
drops, when the block ends, the entries registered inside it, and nothing else:
the engine wraps each run's `fit` in it (`segcore.training`), and the test suite
drops every entry after each test, with the Keras session. Differentiating a
traced step's graph again after its block (`tf.gradients` on that graph) would
then fail with "No gradient defined for operation ... CustomGradient-<n>"; Keras
never does. `tests/test_gradient_registry_workaround.py` fails when TensorFlow is
upgraded (re-check the leak, then drop this module) and when the leak is gone.
"""

import contextlib

from tensorflow.python.framework import ops

WRITTEN_FOR_TENSORFLOW = "2.21.0"
PREFIX = "CustomGradient-"


def custom_gradient_names():
    """The names of the graph-mode custom gradients registered so far."""
    return {name for name in ops._gradient_registry.list() if name.startswith(PREFIX)}


def release(names):
    """Drop these custom gradients from TensorFlow's registry; returns how many were there."""
    registry = ops._gradient_registry._registry
    return sum(registry.pop(name, None) is not None for name in names)


@contextlib.contextmanager
def releasing_custom_gradients():
    """Drop, when the block ends, the custom gradients registered inside it."""
    before = custom_gradient_names()
    try:
        yield
    finally:
        release(custom_gradient_names() - before)
