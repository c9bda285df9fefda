"""FCN-32s/16s/8s: parameter counts, convolutionalised VGG16, sizes, alignment, names."""

import keras
import numpy as np
import pytest

from fcn_tf import build_fcn, preprocess
from fcn_tf.vgg16 import copy_vgg16_weights, load_vgg16_weights
from segcore.errors import ConfigError

NARROW = 0.125  # VGG16's graph at 8 ... 64 channels, fc6/fc7 512: where width is not the point


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def fcn8s():
    return build_fcn("fcn8s", num_classes=21)


def test_fcn8s_parameter_count_matches_caffe_reference(fcn8s):
    # The reference figure: 134,362,751 learnable + 127,008 in the three deconvolutions.
    deconvs = ("upscore2", "upscore_pool4", "upscore8")
    in_deconvs = count(w for name in deconvs for w in fcn8s.get_layer(name).weights)
    assert in_deconvs == 127_008
    assert count(fcn8s.weights) - in_deconvs == 134_362_751
    # Default (the paper): the 2x deconvolutions learn, upscore8 is fixed.
    assert count(fcn8s.trainable_weights) == 134_362_751 + 2 * 7_056
    assert count(fcn8s.non_trainable_weights) == 112_896


def test_reference_repo_setting_fixes_every_deconvolution():
    model = build_fcn("fcn8s", 21, learn_upsampling="none")
    assert count(model.trainable_weights) == 134_362_751
    assert count(model.non_trainable_weights) == 127_008


@pytest.mark.parametrize("variant, trainable, fixed", [
    ("fcn16s", 134_357_354 + 7_056, 32 * 32 * 21 * 21),
    ("fcn32s", 134_346_581, 64 * 64 * 21 * 21),
])
def test_fcn16s_fcn32s_parameter_counts(variant, trainable, fixed):
    model = build_fcn(variant, 21)
    assert count(model.trainable_weights) == trainable
    assert count(model.non_trainable_weights) == fixed


def test_layer_names_follow_the_reference(fcn8s):
    names = {layer.name for layer in fcn8s.layers}
    for name in ("conv1_1", "conv5_3", "pool3", "pool4", "pool5", "fc6", "drop6", "fc7", "drop7",
                 "score_fr", "upscore2", "score_pool4", "fuse_pool4", "upscore_pool4",
                 "score_pool3", "fuse_pool3", "upscore8", "score"):
        assert name in names
    assert fcn8s.get_layer("fc6").kernel.shape == (7, 7, 512, 4096)
    assert fcn8s.get_layer("fc7").kernel.shape == (1, 1, 4096, 4096)


def test_score_convolutions_start_at_zero_and_deconvolutions_bilinear(fcn8s):
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not np.any(fcn8s.get_layer(name).kernel.numpy())
    kernel = fcn8s.get_layer("upscore8").kernel.numpy()
    row = 1 - np.abs(np.arange(16) - 7.5) / 8
    np.testing.assert_allclose(kernel[:, :, 5, 5], np.outer(row, row), rtol=1e-6)
    assert not kernel[:, :, 5, 6].any()


def test_atonce_scales_pool4_and_pool3():
    model = build_fcn("fcn8s_atonce", 21)
    assert model.get_layer("scale_pool4").scale == pytest.approx(0.01)
    assert model.get_layer("scale_pool3").scale == pytest.approx(0.0001)
    assert count(model.weights) == 134_362_751 + 127_008


@pytest.fixture(scope="module")
def vgg():
    """A Keras VGG16 classifier (include_top=True) with random weights."""
    return keras.applications.VGG16(include_top=True, weights=None)


def test_fc6_fc7_are_the_vgg16_classifier_made_convolutional(vgg):
    # Random weights: the FCN built from a Keras VGG16 (include_top=True) computes, at
    # the centre of fc7 for a 224x224 input, exactly the Dense model's fc2 output.
    fcn = build_fcn("fcn32s", 2, input_shape=(224, 224, 3))
    copy_vgg16_weights(vgg, fcn)
    rng = np.random.default_rng(0)
    images = preprocess(rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32))
    fc2 = keras.Model(vgg.input, vgg.get_layer("fc2").output)(images)
    fc7 = keras.Model(fcn.input, fcn.get_layer("fc7").output)(images)
    assert fc7.shape == (2, 7, 7, 4096)
    np.testing.assert_allclose(np.asarray(fc7)[:, 3, 3], np.asarray(fc2), rtol=1e-4, atol=1e-4)


def test_weights_from_a_saved_vgg16_file(vgg, tmp_path):
    path = str(tmp_path / "vgg16.weights.h5")
    vgg.save_weights(path)
    fcn = build_fcn("fcn32s", 2, weights=path)
    np.testing.assert_array_equal(fcn.get_layer("conv3_2").kernel.numpy(),
                                  vgg.get_layer("block3_conv2").kernel.numpy())
    np.testing.assert_array_equal(fcn.get_layer("fc6").kernel.numpy().reshape(-1, 4096),
                                  vgg.get_layer("fc1").kernel.numpy())


def test_bad_weights_path_is_a_clear_error(fcn8s, tmp_path):
    with pytest.raises(ConfigError, match="no VGG16 weights file at .*missing.h5"):
        build_fcn("fcn8s", 2, weights=str(tmp_path / "missing.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="junk.h5: not a Keras VGG16"):
        load_vgg16_weights(fcn8s, str(junk))


@pytest.mark.parametrize("geometry, size", [
    ("aligned", (161, 577)), ("aligned", (375, 1242)), ("aligned", (500, 366)),
    ("aligned", (1, 1)), ("aligned", (33, 31)),
    ("caffe", (161, 577)), ("caffe", (1, 1)), ("caffe", (33, 31)),
])
def test_output_size_equals_input_size(geometry, size):
    model = _small_models()[geometry]
    logits = model(np.zeros((1, *size, 3), np.float32))
    assert logits.shape == (1, *size, 3)
    assert logits.dtype == "float32"


_CACHE = {}


def _small_models():
    if not _CACHE:
        for geometry in ("aligned", "caffe"):
            _CACHE[geometry] = build_fcn("fcn8s", 3, geometry=geometry, width=NARROW)
    return _CACHE


@pytest.mark.parametrize("layer_name, factor", [("upscore2", 2), ("upscore8", 8)])
def test_aligned_upsampling_puts_each_coarse_pixel_back_on_its_centre(layer_name, factor):
    # Pixel i of a stride-f map covers input pixels f*i ... f*i + f - 1 (centre
    # f*i + (f-1)/2); the 'same' transposed conv must peak symmetrically there.
    model = build_fcn("fcn8s", 2, width=NARROW)
    layer = model.get_layer(layer_name)
    impulse = np.zeros((1, 6, 6, 2), np.float32)
    impulse[0, 2, 3, 0] = 1.0
    out = np.asarray(layer(impulse))[0, :, :, 0]
    rows, cols = np.nonzero(out == out.max())
    assert rows.mean() == pytest.approx(factor * 2 + (factor - 1) / 2)
    assert cols.mean() == pytest.approx(factor * 3 + (factor - 1) / 2)


def test_caffe_geometry_uses_the_reference_offsets():
    model = _small_models()["caffe"]
    assert model.get_layer("score_pool4c").offset == 5
    assert model.get_layer("score_pool3c").offset == 9
    assert model.get_layer("score").offset == 31
    assert model.get_layer("fc6").padding == "valid"


def test_width_scales_every_vgg16_layer_and_keeps_the_graph(fcn8s):
    narrow = build_fcn("fcn8s", num_classes=21, width=NARROW)
    assert [layer.name for layer in narrow.layers] == [layer.name for layer in fcn8s.layers]
    for layer in fcn8s.layers:
        if layer.name.startswith(("conv", "fc")):
            assert narrow.get_layer(layer.name).filters == layer.filters // 8, layer.name
    # conv1_1 ... conv5_3 at 8, 16, 32, 64, 64 channels, fc6 7x7x64x512, fc7 512x512, score 21
    vgg = sum(3 * 3 * i * o + o for i, o in [(3, 8), (8, 8), (8, 16), (16, 16), (16, 32), (32, 32),
                                             (32, 32), (32, 64)] + [(64, 64)] * 5)
    fc = 7 * 7 * 64 * 512 + 512 + 512 * 512 + 512
    scores = (512 + 1) * 21 + (64 + 1) * 21 + (32 + 1) * 21
    assert count(narrow.weights) - 127_008 == vgg + fc + scores


@pytest.mark.parametrize("kwargs, message", [
    ({"variant": "fcn4s"},
     "variant must be one of fcn32s, fcn16s, fcn8s, fcn8s_atonce; got 'fcn4s'"),
    ({"num_classes": 1}, "num_classes must be an integer >= 2"),
    ({"geometry": "caffe", "upsampling": "resize_conv"}, "resize_conv' needs geometry='aligned'"),
    ({"input_shape": (None, None, 1)}, r"input_shape must be \(height, width, 3\)"),
    ({"width": 1.5}, r"width must be a number in \(0, 1\], got 1.5"),
    ({"width": 0.5, "weights": "imagenet"}, "VGG16 weights fit width 1.0 only, got width 0.5"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_fcn(**{"num_classes": 2, **kwargs})


def test_resize_conv_upsampling_keeps_sizes():
    model = build_fcn("fcn8s", 2, upsampling="resize_conv", width=NARROW)
    assert model(np.zeros((1, 45, 70, 3), np.float32)).shape == (1, 45, 70, 2)
    assert "upscore8" in {layer.name for layer in model.layers}


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_patch_conv_is_conv2d_with_the_same_weights(padding):
    from segcore.layers import PatchConv2D
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 9, 11, 8)).astype(np.float32)
    reference = keras.layers.Conv2D(5, 7, padding=padding, activation="relu")
    patch = PatchConv2D(5, 7, padding=padding, activation="relu")
    reference.build(x.shape)
    patch.build(x.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in reference.get_weights()]
    reference.set_weights(weights)
    patch.set_weights(weights)
    expected = np.asarray(reference(x))
    assert expected.shape == ((2, 9, 11, 5) if padding == "same" else (2, 3, 5, 5))
    np.testing.assert_allclose(np.asarray(patch(x)), expected, rtol=1e-5, atol=1e-4)
