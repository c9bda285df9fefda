"""Work-around: Keras 3 runs a dilated `Conv2D` as space-to-batch, convolution, batch-to-space.

Keras's TensorFlow backend convolves with `tf.nn.convolution`, which wraps every
convolution of dilation rate > 1 in `SpaceToBatchND` -> dense `Conv2D` ->
`BatchToSpaceND` (`nn_ops._WithSpaceToBatch`; its comment says dilated gradients
exist only on TPU, but TensorFlow's CPU and GPU kernels have had them since TF 1.5). Upstream:
tensorflow/tensorflow#37883 ("tf.keras.layers.conv*d is slow compared to
tf.nn.conv*d": the space-to-batch copies), and the oneDNN graph rewrite that would
have folded the three ops back into one, tensorflow/tensorflow#62638, closed unmerged.
`tf.nn.conv2d` itself takes `dilations` and runs them natively, forward and both
gradients, with oneDNN, with TensorFlow's Eigen CPU kernels (TF_ENABLE_ONEDNN_OPTS=0)
and with cuDNN.

The cost grows with the rate: at ResNet-50's OS16 `conv5` size (2 x 33 x 33 x 512 ->
512, 3x3) one training step of the layer (forward + both gradients) through Keras takes
about 2.2 times as long as the native convolution at rate 8, 1.3 times at rate 4 and
1.1 times at rate 2 (TF 2.21, oneDNN; benchmarks/profile_step.py shows the
`SpaceToBatchND` / `BatchToSpaceND` rows).

`AtrousConv2D` is `keras.layers.Conv2D` with the same weights, config and outputs
(tests/test_deeplab_speed_equivalence.py) whose dilated 2-D channels-last convolution
calls `tf.nn.conv2d` directly. Depthwise convolutions are left to Keras: TensorFlow's
`DepthwiseConv2dNative` has dilated kernels only under oneDNN, and oneDNN's are slower
than space-to-batch at ASPP's large rates. `tests/test_deeplab_speed_equivalence.py`
fails when Keras stops emitting `SpaceToBatchND` for a dilated `Conv2D` (then this
module can go).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab_tf")
class AtrousConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose dilated convolution is one native `Conv2D` kernel."""

    # False: Keras's own code path (the benchmarks' "before" baseline).
    native = True

    def convolution_op(self, inputs, kernel):
        native = (self.native and max(self.dilation_rate) > 1 and self.groups == 1
                  and self.data_format == "channels_last" and len(inputs.shape) == 4)
        if not native:
            return super().convolution_op(inputs, kernel)
        return tf.nn.conv2d(inputs, kernel, strides=list(self.strides),
                            padding=self.padding.upper(), dilations=list(self.dilation_rate))


def conv2d(filters, kernel_size, dilation_rate=1, **kwargs):
    """A `Conv2D` layer, `AtrousConv2D` when it is dilated (the same layer otherwise)."""
    rates = (dilation_rate,) * 2 if isinstance(dilation_rate, int) else tuple(dilation_rate)
    layer = AtrousConv2D if max(rates) > 1 else keras.layers.Conv2D
    return layer(filters, kernel_size, dilation_rate=dilation_rate, **kwargs)
