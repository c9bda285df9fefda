"""Keras optimizers whose per-variable update is one fused TensorFlow kernel.

Keras 3's Adam and SGD update each variable with several element-wise ops (for
Adam about ten passes over the variable). For FCN's 134M parameters that is
most of a CPU training step. `ResourceApplyAdam` / `ResourceApplyKerasMomentum`
compute the same update in one multithreaded pass (CPU and GPU kernels):
`tests/test_optimizers.py` checks they equal Keras' own to float rounding, on one
device and under MirroredStrategy. Everything else (learning-rate schedules,
decoupled weight decay, loss scaling, checkpoints) is Keras' own.
"""

import keras
import tensorflow as tf


def _handle(variable):
    if isinstance(variable, keras.Variable):
        variable = variable.value  # the tf.Variable (or distributed variable) behind it
    return variable.handle


@keras.saving.register_keras_serializable(package="segcore")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (amsgrad=False) with the fused `ResourceApplyAdam` update."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


@keras.saving.register_keras_serializable(package="segcore")
class FusedSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` with momentum, fused (`ResourceApplyKerasMomentum`):
    m <- momentum * m - lr * g; w <- w + m (or the Nesterov form)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_handle(variable),
            accum=_handle(self.momentums[self._get_variable_index(variable)]),
            lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype),
            momentum=tf.cast(self.momentum, dtype), use_locking=False,
            use_nesterov=self.nesterov,
        )
