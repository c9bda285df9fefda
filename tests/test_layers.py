"""Every custom Keras layer of the package through the shared harness (tests/harness.py):
outputs against a reference computation at odd sizes, get_config round trip, `.keras`
save and load, mixed precision. A layer class the table below misses fails
`test_every_custom_layer_is_in_the_harness`."""

import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.aspp import FusedBatchNormalization, ResizeBilinear
from deeplab_tf.atrous import AtrousConv2D
from deeplab_tf.train import CaffeFromUnitRange
from harness import run_layer_test
from segcore.imagenet import IMAGENET_MEAN_BGR
from segcore.layers import CropLike, PadToMultiple, PatchConv2D
from segcore.upsampling import ResizeConv2D

PACKAGES = ("segcore", "fcn_tf", "unet_tf", "deeplab_tf")


def padded(inputs, layer):
    h, w = inputs.shape[1:3]
    m = layer.multiple
    return np.pad(inputs, [(0, 0), (0, -h % m), (0, -w % m), (0, 0)])


def cropped(inputs, layer):
    x, reference = inputs
    h, w = reference.shape[1:3]
    if layer.offset == "center":
        top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
    else:
        top = left = layer.offset
    return x[:, top:top + h, left:left + w]


def as_keras_conv2d(inputs, layer):
    """The same weights in keras.layers.Conv2D (its own convolution code path)."""
    reference = keras.layers.Conv2D.from_config(
        {k: v for k, v in layer.get_config().items() if k != "name"})
    reference(inputs)
    reference.set_weights(layer.get_weights())
    return reference(inputs)


def bilinear_align_corners(inputs, layer):
    """tf.compat.v1 `resize_bilinear(align_corners=True)` written out: output pixel i
    samples input position i * (n_in - 1) / (n_out - 1)."""
    x, reference = inputs
    out_h, out_w = reference.shape[1:3]

    def positions(n_in, n_out):
        where = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        low = np.floor(where).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, where - low

    (y0, y1, fy), (x0, x1, fx) = positions(x.shape[1], out_h), positions(x.shape[2], out_w)
    rows = x[:, y0] * (1 - fy)[None, :, None, None] + x[:, y1] * fy[None, :, None, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :, None] + rows[:, :, x1] * fx[None, None, :, None]


def bilinear_then_identity(inputs, layer):
    """A fresh ResizeConv2D is a plain bilinear resize (its convolution starts as the identity)."""
    h, w = inputs.shape[1:3]
    return tf.image.resize(inputs, [h * layer.factor, w * layer.factor], method="bilinear")


def batch_norm_inference(inputs, layer):
    gamma, beta, mean, variance = layer.get_weights()
    return (inputs - mean) / np.sqrt(variance + layer.epsilon) * gamma + beta


def caffe_from_unit_range(inputs, layer):
    return ((inputs + 1.0) * 127.5)[..., ::-1] - np.asarray(IMAGENET_MEAN_BGR, np.float32)


LAYER_CASES = [  # (class, constructor arguments, input shapes with odd sizes, reference)
    (PadToMultiple, {"multiple": 8}, [(1, 13, 17, 3), (2, 16, 9, 1)], padded),
    (CropLike, {"offset": 5}, [[(1, 21, 19, 3), (1, 9, 11, 2)], [(2, 16, 16, 1), (2, 7, 5, 4)]],
     cropped),
    (CropLike, {"offset": "center"}, [[(1, 21, 19, 3), (1, 9, 11, 2)]], cropped),
    (PatchConv2D, {"filters": 4, "kernel_size": 3, "padding": "same"},
     [(1, 7, 9, 3), (2, 1, 5, 3)], as_keras_conv2d),
    (PatchConv2D, {"filters": 4, "kernel_size": 3, "padding": "valid", "activation": "relu"},
     [(1, 7, 9, 3)], as_keras_conv2d),
    (ResizeConv2D, {"filters": 3, "factor": 2}, [(1, 5, 7, 3), (2, 1, 3, 3)],
     bilinear_then_identity),
    (ResizeBilinear, {"align_corners": True}, [[(1, 5, 7, 3), (1, 17, 13, 2)],
                                               [(2, 3, 3, 1), (2, 8, 5, 1)]],
     bilinear_align_corners),
    (FusedBatchNormalization, {"epsilon": 1e-3}, [(2, 5, 7, 3)], batch_norm_inference),
    (AtrousConv2D, {"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "same"},
     [(1, 9, 11, 3), (1, 5, 6, 3)], as_keras_conv2d),
    (CaffeFromUnitRange, {}, [(1, 5, 7, 3), (2, 3, 1, 3)], caffe_from_unit_range),
]


@pytest.mark.parametrize("layer_cls, kwargs, input_shapes, reference", LAYER_CASES,
                         ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(LAYER_CASES)])
def test_layer(layer_cls, kwargs, input_shapes, reference, tmp_path):
    run_layer_test(layer_cls, kwargs, input_shapes, tmp_path, expected=reference)


def package_layer_classes():
    """Every keras.layers.Layer subclass (not a Model) defined in the package's modules."""
    found = set()
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module_info in pkgutil.walk_packages(package.__path__, package_name + "."):
            if module_info.name.endswith("__main__"):
                continue
            module = importlib.import_module(module_info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if (cls.__module__ == module.__name__ and issubclass(cls, keras.layers.Layer)
                        and not issubclass(cls, keras.Model)):
                    found.add(cls)
    return found


def test_every_custom_layer_is_in_the_harness():
    covered = {case[0] for case in LAYER_CASES}
    missing = package_layer_classes() - covered
    assert not missing, f"layers without a harness case: {sorted(c.__qualname__ for c in missing)}"
    assert len(covered) == 8
