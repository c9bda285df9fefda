"""Shape layers shared by the model families: padding to a stride, cropping to a reference."""

import keras
import tensorflow as tf


def all_layers(model):
    """Every layer of `model`, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


@keras.saving.register_keras_serializable(package="segcore")
class PadToMultiple(keras.layers.Layer):
    """Zero-pad height and width at the bottom/right up to a multiple of `multiple`.

    Padding at the far side only keeps pixel (0, 0) in place, so a later crop of
    the top-left H x W window is aligned with the input.
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, inputs):
        shape = tf.shape(inputs)
        m = self.multiple
        pad_h = (m - shape[1] % m) % m
        pad_w = (m - shape[2] % m) % m
        return tf.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        up = lambda n: None if n is None else -(-n // self.multiple) * self.multiple  # noqa: E731
        return (b, up(h), up(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="segcore")
class CropLike(keras.layers.Layer):
    """Crop `inputs[0]` to the height and width of `inputs[1]`, starting at `offset`.

    This is Caffe's `Crop` layer as the FCN reference uses it (`score_pool4c`
    offset 5, `score_pool3c` offset 9, final `score` offset 31 for FCN-8s);
    `offset="center"` crops the centre, as the U-Net skip connections do.
    """

    def __init__(self, offset=0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, inputs):
        x, reference = inputs
        target = tf.shape(reference)[1:3]
        if self.offset == "center":
            start = (tf.shape(x)[1:3] - target) // 2
        else:
            start = tf.constant([self.offset, self.offset])
        return x[:, start[0]:start[0] + target[0], start[1]:start[1] + target[1], :]

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@keras.saving.register_keras_serializable(package="segcore")
class PatchConv2D(keras.layers.Conv2D):
    """`Conv2D` computed as patch extraction + one matrix product (im2col + GEMM).

    Same weights, configuration and results as `keras.layers.Conv2D` (stride 1,
    no dilation). For a large kernel on a small map, FCN's `fc6` (7x7x512 -> 4096
    on a pool5 of a few pixels), TensorFlow's CPU filter gradient takes several
    seconds per step where the GEMM takes a fraction (benchmarks/bench_fcn.py).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if tuple(self.strides) != (1, 1) or tuple(self.dilation_rate) != (1, 1):
            raise ValueError("PatchConv2D supports strides 1 and dilation 1 only")

    def convolution_op(self, inputs, kernel):
        kh, kw, cin, cout = kernel.shape
        patches = tf.image.extract_patches(
            inputs, sizes=[1, kh, kw, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1],
            padding=self.padding.upper(),
        )
        shape = tf.shape(patches)
        flat = tf.reshape(patches, [-1, kh * kw * cin])
        outputs = tf.matmul(flat, tf.reshape(kernel, [kh * kw * cin, cout]))
        return tf.reshape(outputs, tf.concat([shape[:3], [cout]], axis=0))
