"""The model zoo's DeepLab configurations in `build_deeplabv3plus`: no decoder
(DeepLabv3), ASPP without atrous branches, MobileNetV2 `depth_multiplier`, and the
presets named after the model zoo's models.

The reference's variable names and shapes are derived below from the reference
code (no deeplab_tf import in the derivation); tests/test_deeplab_convert.py uses
the same table and checks it against the real published TFLite file.

MobileNetV2 (TF-slim `nets/mobilenet/mobilenet_v2.py`, `V2_DEF`; research/deeplab
`core/feature_extractor._mobilenet_v2`, final endpoint `layer_18`):

* `Conv`: conv2d 3x3 stride 2, 32 outputs;
* `expanded_conv`: expansion `expand_input_by_factor(1, divisible_by=1)` (no
  expand layer), 16 outputs; then `expanded_conv_1` .. `expanded_conv_16` with
  expansion `expand_input_by_factor(6)` = `_make_divisible(6 * c_in, 8)` and
  outputs (t=6) 24 x2, 32 x3, 64 x4, 96 x3, 160 x3, 320 x1;
* each `expanded_conv*`: `expand` (1x1, if any), `depthwise` (3x3,
  `depthwise_weights` [3, 3, C, 1]), `project` (1x1), each with a slim BatchNorm
  (`BatchNorm/{gamma,beta,moving_mean,moving_variance}`, center and scale True);
* the depth multiplier applies to `num_outputs` (Conv and projections):
  `_make_divisible(c * dm, divisible_by, min_depth)` with divisible_by = min_depth
  = 8 if dm == 1.0 else 1 (feature_extractor._mobilenet_v2).

Head (research/deeplab `model.py`, `extract_features` with `aspp_with_batch_norm`,
`add_image_level_feature`; `_get_logits`): `image_pooling` and `aspp0` 1x1 convs
of 256 with BatchNorm, `aspp{1,2,3}_depthwise` / `_pointwise` with BatchNorm when
atrous rates are given, `concat_projection` 1x1 256 with BatchNorm, and
`logits/semantic` 1x1 with `weights` and `biases`. Checkpoint layout: conv
`weights` [kh, kw, in, out].
"""

import collections
import inspect

import numpy as np
import pytest

from segcore.errors import ConfigError

MOBILENET_BLOCKS = [(1, 16, 1)] + [(6, c, n) for c, n in
                                   ((24, 2), (32, 3), (64, 4), (96, 3), (160, 3), (320, 1))]
BN = ("gamma", "beta", "moving_mean", "moving_variance")


def make_divisible(v, divisor, min_value=None):
    """slim mobilenet `_make_divisible`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def mobilenet_v2_variables(depth_multiplier=0.5, num_classes=21, batch_norm=True, aspp_rates=False):
    """{name: shape} of a research/deeplab MobileNetV2 DeepLabv3 (no decoder) checkpoint."""
    divisor = 8 if depth_multiplier == 1.0 else 1
    out = collections.OrderedDict()

    def conv(scope, kh, cin, cout, depthwise=False):
        if depthwise:
            out[f"{scope}/depthwise_weights"] = (kh, kh, cin, 1)
        else:
            out[f"{scope}/weights"] = (kh, kh, cin, cout)
        if batch_norm:
            for leaf in BN:
                out[f"{scope}/BatchNorm/{leaf}"] = (cout,)

    channels = make_divisible(32 * depth_multiplier, divisor, divisor)
    conv("MobilenetV2/Conv", 3, 3, channels)
    index = 0
    for expansion, c, n in MOBILENET_BLOCKS:
        for _ in range(n):
            scope = "MobilenetV2/expanded_conv" + (f"_{index}" if index else "")
            inner = make_divisible(channels * expansion, 8 if expansion > 1 else 1)
            if inner > channels:
                conv(f"{scope}/expand", 1, channels, inner)
            conv(f"{scope}/depthwise", 3, inner, inner, depthwise=True)
            outputs = make_divisible(c * depth_multiplier, divisor, divisor)
            conv(f"{scope}/project", 1, inner, outputs)
            channels = outputs
            index += 1
    conv("image_pooling", 1, channels, 256)
    conv("aspp0", 1, channels, 256)
    branches = 2
    if aspp_rates:
        for i in (1, 2, 3):
            conv(f"aspp{i}_depthwise", 3, channels, channels, depthwise=True)
            conv(f"aspp{i}_pointwise", 1, channels, 256)
        branches = 5
    conv("concat_projection", 1, 256 * branches, 256)
    out["logits/semantic/weights"] = (1, 1, 256, num_classes)
    out["logits/semantic/biases"] = (num_classes,)
    return out


# Batch-norm epsilon of each scope in the reference: slim's default 1e-3 in the
# MobileNetV2 arg scope, 1e-5 in the DeepLab head (model.py batch_norm_params).
def batch_norm_epsilon(scope):
    return 1e-3 if scope.startswith("MobilenetV2/") else 1e-5


# --------------------------------------------------------------------------- tests

def _mobilenet(**kwargs):
    options = dict(backbone="mobilenetv2", output_stride=16, atrous_rates=(), decoder=False)
    options.update(kwargs)
    from deeplab_tf.model import build_deeplabv3plus
    return build_deeplabv3plus(**options)


def _shapes(network):
    from deeplab_tf.convert import reference_variables
    return {name: tuple(layer.weights[index].shape)
            for name, (layer, index) in reference_variables(network).items()}


@pytest.mark.parametrize("depth_multiplier", [0.5, 1.0])
def test_depth_multiplier_builds_the_reference_channels(depth_multiplier):
    network = _mobilenet(depth_multiplier=depth_multiplier)
    assert _shapes(network) == dict(mobilenet_v2_variables(depth_multiplier))
    trainable = sum(int(np.prod(s)) for k, s in mobilenet_v2_variables(depth_multiplier).items()
                    if not k.endswith(("moving_mean", "moving_variance")))
    assert sum(int(np.prod(w.shape)) for w in network.trainable_weights) == trainable


def test_depth_multiplier_half_rounds_as_the_reference_not_as_keras_applications():
    reference = _mobilenet(depth_multiplier=0.5)
    keras_width = _mobilenet(alpha=0.5)
    # 24 * 0.5: the reference keeps 12 channels (divisible_by 1), keras.applications 16.
    assert reference.get_layer("block_1_project").kernel.shape[-1] == 12
    assert keras_width.get_layer("block_1_project").kernel.shape[-1] == 16
    # Expansions are 6 x the input rounded to 8 (not multiplied); depthwise keep it.
    assert reference.get_layer("block_2_expand").kernel.shape[-1] == 72
    assert reference.get_layer("block_16_project").kernel.shape[-1] == 160
    # The head is not shrunk.
    assert reference.get_layer("aspp0").kernel.shape[-1] == 256


def test_depth_multiplier_one_is_alpha_one():
    a = _mobilenet(depth_multiplier=1.0, decoder=True, atrous_rates=None)
    b = _mobilenet(alpha=1.0, decoder=True, atrous_rates=None)
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
    # tests/test_deeplab_model.py's golden figure for MobileNetV2 (1.0) with the decoder.
    assert sum(int(np.prod(w.shape)) for w in a.trainable_weights) == 2_725_573


def test_no_atrous_branches_and_no_decoder():
    network = _mobilenet(depth_multiplier=0.5, output_stride=8)
    names = {layer.name for layer in network.layers}
    assert not any(n.startswith(("aspp1", "aspp2", "aspp3", "feature_projection0", "decoder"))
                   for n in names)
    assert network.get_layer("concat_projection").kernel.shape == (1, 1, 512, 256)
    assert network.name == "deeplabv3_mobilenetv2"
    # Logits at the input size for an odd size, and the image-pooling branch is global:
    # a constant image gives constant logits (every branch sees the same features).
    x = np.random.default_rng(0).normal(size=(1, 37, 41, 3)).astype("float32")
    assert network(x).shape == (1, 37, 41, 21)
    flat = network(np.full((1, 33, 33, 3), 0.25, "float32")).numpy()
    np.testing.assert_allclose(flat, np.broadcast_to(flat[:, 16:17, 16:17], flat.shape), atol=1e-5)


def test_atrous_rates_and_decoder_still_build_the_default_head():
    network = _mobilenet(depth_multiplier=0.5, atrous_rates=(6, 12, 18), decoder=True)
    assert network.get_layer("aspp3_depthwise").dilation_rate == (18, 18)
    assert network.get_layer("concat_projection").kernel.shape == (1, 1, 1280, 256)
    assert network.get_layer("feature_projection0").kernel.shape == (1, 1, 72, 48)


@pytest.mark.parametrize("kwargs, argument", [
    ({"backbone": "resnet50", "depth_multiplier": 0.5, "atrous_rates": None}, "depth_multiplier"),
    ({"alpha": 0.5, "depth_multiplier": 0.5}, "depth_multiplier"),
    ({"depth_multiplier": 0}, "depth_multiplier"),
    ({"depth_multiplier": 0.5, "weights": "imagenet"}, "depth_multiplier"),
    ({"atrous_rates": (6, 12)}, "atrous_rates"),
    ({"atrous_rates": (6, 0, 18)}, "atrous_rates"),
    ({"decoder": "no"}, "decoder"),
])
def test_bad_zoo_options_raise_one_line_config_errors(kwargs, argument):
    with pytest.raises(ConfigError) as error:
        _mobilenet(**kwargs)
    assert argument in str(error.value) and "\n" not in str(error.value)


ZOO = {"mobilenetv2_coco_voc_trainaug": ("75.32 %", 1.0),
       "mobilenetv2_dm05_coco_voc_trainaug": ("70.19 %", 0.5),
       "xception65_coco_voc_trainaug": ("82.20 %", None)}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_model_zoo_presets(name):
    from deeplab_tf.model import build_deeplabv3plus
    from deeplab_tf.presets import PRESETS

    figure, depth_multiplier = ZOO[name]
    preset = PRESETS[name]
    assert figure in preset.target and "val" in preset.target
    assert preset.dataset == "voc2012" and preset.train_split == "train_aug"
    options = {k: v for k, v in preset.model.items() if k != "l2_weight_decay"}
    # Every model option is a keyword argument of the builder (what the trainer's
    # option layer is derived from).
    assert set(options) <= set(inspect.signature(build_deeplabv3plus).parameters)
    if depth_multiplier is None:
        assert options["decoder"] is True and tuple(options["atrous_rates"]) == (6, 12, 18)
        return  # Xception-65's build is covered by tests/test_deeplab_model.py
    network = build_deeplabv3plus(num_classes=21, **options)
    assert _shapes(network) == dict(mobilenet_v2_variables(depth_multiplier))
