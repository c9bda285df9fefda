"""Every network builder of the package through the shared harness (tests/harness.py):
output shapes at odd input sizes, a SavedModel reloaded in plain TensorFlow computing
the Keras outputs, and the paper's parameter count where the network is built at the
paper's width. The full-width FCN and DeepLab counts, which need the 134 M and 41 M
parameter networks, are checked without an export in tests/test_fcn_model.py and
tests/test_deeplab_model.py."""

import pytest

from deeplab_tf import build_deeplabv3plus
from fcn_tf import build_fcn
from harness import run_model_test
from unet_tf import build_unet, output_size


@pytest.mark.parametrize("variant, geometry", [("fcn8s", "aligned"), ("fcn32s", "caffe")])
def test_fcn(variant, geometry, tmp_path):
    network = build_fcn(variant, 3, geometry=geometry, width=0.125, dropout=0.0)
    run_model_test(network, [(1, 33, 47, 3), (2, 64, 31, 3)],
                   lambda shape: (*shape[:3], 3), tmp_path)


def test_unet_at_the_papers_width(tmp_path):
    # valid convolutions: 188 -> 4, 252 -> 68 (tiling checked in tests/test_unet_tiling.py)
    network = build_unet(input_shape=(None, None, 1))
    run_model_test(network, [(1, 188, 252, 1)],
                   lambda shape: (1, output_size(shape[1]), output_size(shape[2]), 2), tmp_path,
                   parameters=31_030_658)


def test_unet_same_padding_any_even_size(tmp_path):
    network = build_unet(input_shape=(None, None, 1), base_filters=4, padding="same",
                         batch_norm=True, num_classes=3)
    run_model_test(network, [(1, 48, 80, 1), (2, 16, 32, 1)],
                   lambda shape: (*shape[:3], 3), tmp_path)


def test_deeplabv3plus(tmp_path):
    # Its SavedModel round trip, at two sizes in one signature, is
    # tests/test_deeplab_inference.py's (the same network, with multi-scale serving).
    network = build_deeplabv3plus(5, backbone="mobilenetv2", alpha=0.35)
    run_model_test(network, [(1, 33, 47, 3), (2, 65, 65, 3)],
                   lambda shape: (*shape[:3], 5), tmp_path, saved_model=False)
