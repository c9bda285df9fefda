"""DeepLabv3+: parameter counts, feature strides, atrous rates, odd input sizes,
the image-pooling branch on dynamic sizes (in a reloaded SavedModel: see
tests/test_deeplab_inference.py, which exports plain and multi-scale serving
functions in one SavedModel), ImageNet weight
transfer from keras.applications, configuration errors, and one training step
with synchronized batch norm under a 2-replica MirroredStrategy.

Parameter counts are built on a static 97 x 129 input (no forward pass); forward
passes use inputs of at most 97 x 129.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import (
    build_deeplabv3plus,
    check_batch_norm_batch,
    copy_weights_by_name,
    mobilenet_v2,
    preprocess_input,
    resnet50,
)
from segcore.errors import ConfigError
from segcore.precision import dtype_policy

STATIC_SHAPE = (97, 129, 3)


def head_parameters(encoder_channels, low_level_channels, num_classes=21, separable=True):
    """Trainable parameters of ASPP + decoder + logits (BN gamma/beta, conv kernels,
    a bias only on the logits), from the reference's layer list."""
    c, low = encoder_channels, low_level_channels

    def conv(cin, cout, k=1):  # kernel + BN (gamma, beta)
        return k * k * cin * cout + 2 * cout

    def sep(cin, cout):  # depthwise 3x3 + BN, pointwise + BN
        return 9 * cin + 2 * cin + cin * cout + 2 * cout

    branch = sep if separable else (lambda cin, cout: conv(cin, cout, 3))
    aspp = conv(c, 256) + conv(c, 256) + 3 * branch(c, 256) + conv(5 * 256, 256)
    decoder = conv(low, 48) + branch(256 + 48, 256) + branch(256, 256)
    return aspp + decoder + 256 * num_classes + num_classes


# Encoders: Xception-65 from the research/deeplab layer list (see deeplab_tf.xception);
# ResNets = keras.applications include_top=False; MobileNetV2 = keras.applications
# include_top=False minus Conv_1 (cin x 1280) and Conv_1_bn (2 x 1280).
ENCODER_PARAMETERS = {
    ("xception65", 1.0): 37_867_312,
    ("resnet50", 1.0): 23_534_592,
    ("resnet101", 1.0): 42_552_832,
    ("mobilenetv2", 1.0): 2_223_872 - 320 * 1280 - 2 * 1280,  # 1,811,712
    ("mobilenetv2", 0.35): 396_128 - 112 * 1280 - 2 * 1280,  # 250,208
}
# (encoder output channels, stride-4 channels)
TAP_CHANNELS = {
    ("xception65", 1.0): (2048, 256),
    ("resnet50", 1.0): (2048, 256),
    ("resnet101", 1.0): (2048, 256),
    ("mobilenetv2", 1.0): (320, 144),
    ("mobilenetv2", 0.35): (112, 48),
}
# Trainable parameters, 21 classes: (backbone, alpha, separable) -> count.
GOLDEN_PARAMETERS = {
    ("xception65", 1.0, True): 41_055_413,  # research/deeplab's figure
    ("xception65", 1.0, False): 54_711_461,
    ("resnet50", 1.0, True): 26_722_693,
    ("resnet101", 1.0, True): 45_740_933,
    ("mobilenetv2", 1.0, True): 2_725_573,
    ("mobilenetv2", 0.35, False): 2_711_509,
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def static_model():
    """static_model(backbone, output_stride, alpha=1.0, separable=True): the 21-class model
    on a static 97 x 129 input, built once per configuration in this module and dropped
    when the module ends (about 10 large networks)."""
    models = {}

    def get(backbone, output_stride, alpha=1.0, separable=True):
        key = (backbone, output_stride, alpha, separable)
        if key not in models:
            models[key] = build_deeplabv3plus(
                backbone=backbone, output_stride=output_stride, alpha=alpha,
                separable=separable, input_shape=STATIC_SHAPE)
        return models[key]

    yield get
    models.clear()


@pytest.fixture(scope="module")
def small_model():
    """MobileNetV2 alpha 0.35, dynamic input size, random batch-norm statistics."""
    keras.utils.set_random_seed(1)
    model = build_deeplabv3plus(num_classes=5, backbone="mobilenetv2", alpha=0.35)
    randomize_batch_norm(model, np.random.default_rng(1))
    return model


def randomize_batch_norm(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, variance.shape),
            ])


def test_golden_values_are_encoder_plus_head():
    for (backbone, alpha, separable), count in GOLDEN_PARAMETERS.items():
        encoder = ENCODER_PARAMETERS[(backbone, alpha)]
        channels, low = TAP_CHANNELS[(backbone, alpha)]
        assert count == encoder + head_parameters(channels, low, separable=separable)
    assert head_parameters(2048, 256) == 3_019_776 + 162_928 + 5_397


@pytest.mark.parametrize("backbone, alpha", [
    ("xception65", 1.0), ("resnet50", 1.0), ("resnet101", 1.0), ("mobilenetv2", 1.0),
])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_parameters_and_feature_strides(backbone, alpha, output_stride, static_model):
    model = static_model(backbone, output_stride, alpha)
    assert trainable_count(model) == GOLDEN_PARAMETERS[(backbone, alpha, True)]
    channels, low_channels = TAP_CHANNELS[(backbone, alpha)]
    # The ASPP reads tap[OS], the decoder's projection reads tap[4].
    encoder = model.get_layer("aspp0").input
    low_level = model.get_layer("feature_projection0").input
    h, w = STATIC_SHAPE[:2]
    assert tuple(low_level.shape) == (None, -(-h // 4), -(-w // 4), low_channels)  # 25 x 33
    assert tuple(encoder.shape) == (
        None, -(-h // output_stride), -(-w // output_stride), channels
    )  # 7 x 9 at OS16, 13 x 17 at OS8
    assert tuple(model.output.shape) == (None, h, w, 21)
    rates = ((6, 12, 18) if output_stride == 16 else (12, 24, 36))
    assert [model.get_layer(f"aspp{i}_depthwise").dilation_rate[0]
            for i in (1, 2, 3)] == list(rates)


@pytest.mark.parametrize("backbone, alpha", [("xception65", 1.0), ("mobilenetv2", 0.35)])
def test_plain_convolution_parameters(backbone, alpha, static_model):
    model = static_model(backbone, 16, alpha, separable=False)
    assert trainable_count(model) == GOLDEN_PARAMETERS[(backbone, alpha, False)]
    assert model.get_layer("aspp2").dilation_rate == (12, 12)
    assert model.get_layer("decoder_conv0").kernel_size == (3, 3)


@pytest.mark.parametrize("output_stride, expected", [
    # conv4 (3x3) rate, conv5 (3x3) rates with multi-grid (1, 2, 4), conv4/conv5 strides
    (16, (1, (2, 4, 8), 2, 1)),
    (8, (2, (4, 8, 16), 1, 1)),
])
def test_resnet_atrous_and_multi_grid(output_stride, expected, static_model):
    model = static_model("resnet101", output_stride)
    conv4_rate, conv5_rates, conv4_stride, conv5_stride = expected
    rate = lambda name: model.get_layer(name).dilation_rate[0]  # noqa: E731
    assert {rate(f"conv4_block{i}_2_conv") for i in range(1, 24)} == {conv4_rate}
    assert [rate(f"conv5_block{i}_2_conv") for i in (1, 2, 3)] == list(conv5_rates)
    assert model.get_layer("conv4_block1_1_conv").strides[0] == conv4_stride
    assert model.get_layer("conv5_block1_1_conv").strides[0] == conv5_stride
    assert model.get_layer("conv5_block1_0_conv").strides[0] == conv5_stride


@pytest.mark.parametrize("output_stride, expected", [
    # rate of middle flow, exit_flow_block1 stride, exit_flow_block2 rate, entry_flow_block3 stride
    (16, (1, 1, 2, 2)),
    (8, (2, 1, 4, 1)),
])
def test_xception_atrous(output_stride, expected, static_model):
    model = static_model("xception65", output_stride)
    middle_rate, exit1_stride, exit2_rate, entry3_stride = expected
    rate = lambda name: model.get_layer(name).dilation_rate[0]  # noqa: E731
    stride = lambda name: model.get_layer(name).strides[0]  # noqa: E731
    assert rate("middle_flow_block1_unit_16_separable_conv3_depthwise") == middle_rate
    assert stride("exit_flow_block1_unit_1_separable_conv3_depthwise") == exit1_stride
    assert rate("exit_flow_block1_unit_1_separable_conv3_depthwise") == middle_rate
    exit2 = {rate(f"exit_flow_block2_unit_1_separable_conv{i}_depthwise") for i in (1, 2, 3)}
    assert exit2 == {exit2_rate}
    assert stride("entry_flow_block3_unit_1_separable_conv3_depthwise") == entry3_stride
    assert stride("entry_flow_block2_unit_1_separable_conv3_depthwise") == 2
    # explicit ("fixed") padding before every stride-2 convolution, 'valid' convolution after
    assert model.get_layer("entry_flow_block2_unit_1_separable_conv3_pad").padding == (
        (1, 1), (1, 1))
    assert model.get_layer("entry_flow_conv1_1").padding == "valid"
    middle_units = [layer for layer in model.layers
                    if layer.name.startswith("middle_flow") and layer.name.endswith("_add")]
    assert len(middle_units) == 16


def test_mobilenet_atrous(static_model):
    model = static_model("mobilenetv2", 8)
    assert model.get_layer("block_6_depthwise").strides == (1, 1)
    assert model.get_layer("block_6_depthwise").dilation_rate == (1, 1)
    assert {model.get_layer(f"block_{i}_depthwise").dilation_rate[0] for i in range(7, 14)} == {2}
    assert {model.get_layer(f"block_{i}_depthwise").dilation_rate[0] for i in (14, 15, 16)} == {4}
    assert model.get_layer("block_3_depthwise").strides == (2, 2)


@pytest.mark.parametrize("backbone", ["xception65", "resnet50", "mobilenetv2"])
def test_forward_odd_static_size(backbone, static_model):
    model = static_model(backbone, 16)
    x = np.random.default_rng(0).normal(size=(1,) + STATIC_SHAPE).astype("float32")
    logits = model(x, training=False)
    assert logits.shape == (1, 97, 129, 21)
    assert logits.dtype == tf.float32
    assert np.isfinite(logits.numpy()).all()
    assert float(tf.math.reduce_std(logits)) > 0


def test_output_size_equals_input_size_for_any_size(small_model):
    rng = np.random.default_rng(2)
    for shape in [(2, 33, 47), (1, 65, 65), (1, 97, 129), (1, 18, 17), (1, 500 // 4, 366 // 4)]:
        logits = small_model(rng.normal(size=shape + (3,)).astype("float32"), training=False)
        assert logits.shape == shape + (5,)


def test_image_pooling_branch_on_two_sizes(small_model):
    probe = keras.Model(
        small_model.input,
        [small_model.get_layer("aspp0").input,
         small_model.get_layer("image_pooling_resize").output],
    )
    conv = small_model.get_layer("image_pooling").get_weights()[0][0, 0]  # (112, 256)
    bn = small_model.get_layer("image_pooling_bn")
    gamma, beta, mean, variance = bn.get_weights()
    rng = np.random.default_rng(3)
    for h, w in [(33, 47), (65, 97)]:
        features, pooled = (t.numpy()
                            for t in probe(rng.normal(size=(2, h, w, 3)).astype("float32")))
        fh, fw = -(-h // 16), -(-w // 16)
        assert features.shape == (2, fh, fw, 112)
        assert pooled.shape == (2, fh, fw, 256)
        z = features.mean(axis=(1, 2)) @ conv
        expected = np.maximum((z - mean) / np.sqrt(variance + bn.epsilon) * gamma + beta, 0.0)
        np.testing.assert_allclose(pooled,
                                   np.broadcast_to(expected[:, None, None, :], pooled.shape),
                                   rtol=1e-4, atol=1e-5)


def test_get_config_round_trip(small_model):
    clone = keras.Model.from_config(small_model.get_config())
    clone.set_weights(small_model.get_weights())
    x = np.random.default_rng(5).normal(size=(1, 33, 35, 3)).astype("float32")
    np.testing.assert_allclose(clone(x), small_model(x), rtol=1e-6, atol=1e-6)
    assert clone.get_layer("upsample_logits").align_corners is True


@pytest.mark.parametrize("kwargs, argument", [
    ({"output_stride": 32}, "output_stride"),
    ({"output_stride": 4}, "output_stride"),
    ({"backbone": "vgg16"}, "backbone"),
    ({"backbone": "xception65", "weights": "imagenet"}, "weights"),
    ({"backbone": "resnet50", "weights": "/nonexistent/resnet50.h5"}, "weights"),
    ({"input_shape": (16, 64, 3)}, "input_shape"),
    ({"input_shape": (64, 64, 4)}, "input_shape"),
    ({"backbone": "resnet50", "alpha": 0.5}, "alpha"),
    ({"backbone": "mobilenetv2", "multi_grid": (1, 2, 4)}, "multi_grid"),
    ({"backbone": "resnet50", "multi_grid": (1, 2)}, "multi_grid"),
    ({"num_classes": 0}, "num_classes"),
])
def test_bad_configuration_raises_config_error(kwargs, argument):
    with pytest.raises(ConfigError) as error:
        build_deeplabv3plus(**kwargs)
    message = str(error.value)
    assert argument in message and "\n" not in message


def test_input_just_large_enough_builds():
    model = build_deeplabv3plus(backbone="mobilenetv2", alpha=0.35, output_stride=8,
                                input_shape=(9, 9, 3))
    assert tuple(model.get_layer("aspp0").input.shape) == (None, 2, 2, 112)


def _random_application(factory, rng, **kwargs):
    source = factory(include_top=False, weights=None, input_shape=(None, None, 3), **kwargs)
    randomize_batch_norm(source, rng)
    return source


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenetv2"])
def test_keras_applications_weight_transfer_is_exact(backbone, tmp_path):
    rng = np.random.default_rng(6)
    if backbone == "resnet50":
        source = _random_application(keras.applications.ResNet50, rng)
        alpha, encoder, low, end, skip = 1.0, resnet50, "conv2_block3_out", "conv5_block3_out", ()
        encoder_kwargs = {"multi_grid": (1, 1, 1)}  # keras.applications has no multi-grid
    else:
        source = _random_application(keras.applications.MobileNetV2, rng, alpha=0.35)
        alpha, encoder = 0.35, mobilenet_v2
        low, end = "block_2_depthwise_relu", "block_16_project_BN"
        skip, encoder_kwargs = ("Conv_1", "Conv_1_bn"), {"alpha": 0.35}
    path = str(tmp_path / f"{backbone}.weights.h5")
    source.save_weights(path)

    model = build_deeplabv3plus(num_classes=3, backbone=backbone, alpha=alpha, weights=path)
    compared = 0
    for layer in source.layers:
        if not layer.get_weights() or layer.name in skip:
            continue
        for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
        compared += 1
    assert compared == (106 if backbone == "resnet50" else 102)

    # Stride-4 features do not depend on the output stride: equal to keras.applications'.
    # MobileNetV2: an even size, where keras.applications' `correct_pad` on an unknown
    # shape equals 'same' padding (deeplab_tf.mobilenet, "Padding").
    size = (65, 97) if backbone == "resnet50" else (64, 96)
    x = rng.normal(size=(2,) + size + (3,)).astype("float32")
    ours = keras.Model(model.input, model.get_layer("feature_projection0").input)(x)
    theirs = keras.Model(source.input, source.get_layer(low).output)(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)

    # At output stride 32 (no atrous convolution) the whole encoder is keras.applications'.
    image = keras.Input((None, None, 3))
    taps = encoder(image, output_stride=32, **encoder_kwargs)
    at32 = keras.Model(image, taps[32])
    copy_weights_by_name(source, at32, skip=skip)
    x = rng.normal(size=(2, 64, 96, 3)).astype("float32")
    np.testing.assert_allclose(at32(x), keras.Model(source.input, source.get_layer(end).output)(x),
                               rtol=1e-5, atol=1e-5)


def test_imagenet_weights_go_through_keras_applications(monkeypatch):
    calls = []
    real = keras.applications.MobileNetV2
    rng = np.random.default_rng(7)

    def fake(**kwargs):
        calls.append(kwargs)
        return _random_application(real, rng, alpha=kwargs["alpha"])

    monkeypatch.setattr(keras.applications, "MobileNetV2", fake)
    model = build_deeplabv3plus(num_classes=3, backbone="mobilenetv2", alpha=0.35,
                                weights="imagenet")
    assert calls == [{"include_top": False, "weights": "imagenet", "input_shape": (None, None, 3),
                      "alpha": 0.35}]
    assert model.get_layer("Conv1").get_weights()[0].shape == (3, 3, 3, 16)

    def offline(**kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(ConfigError, match="weights='imagenet'"):
        build_deeplabv3plus(num_classes=3, backbone="mobilenetv2", alpha=0.35, weights="imagenet")


def test_sync_and_frozen_batch_norm():
    model = build_deeplabv3plus(num_classes=5, backbone="mobilenetv2", alpha=0.35, dropout=0.0,
                                sync_batch_norm=True, freeze_batch_norm=True)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    # 51 in the encoder (bn_Conv1, 2 in block 0, 3 in blocks 1-16), 9 in ASPP, 5 in the decoder
    assert len(norms) == 65 and all(n.synchronized and not n.trainable for n in norms)
    gamma_beta = sum(2 * n.gamma.shape[0] for n in norms)
    channels, low = TAP_CHANNELS[("mobilenetv2", 0.35)]
    five_classes = ENCODER_PARAMETERS[("mobilenetv2", 0.35)] + head_parameters(channels, low, 5)
    assert trainable_count(model) == five_classes - gamma_beta
    randomize_batch_norm(model, np.random.default_rng(8))
    x = np.random.default_rng(9).normal(size=(2, 33, 33, 3)).astype("float32")
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-6,
                               atol=1e-6)


def test_float32_logits_under_mixed_precision():
    with dtype_policy("mixed_bfloat16"):
        model = build_deeplabv3plus(num_classes=5, backbone="mobilenetv2", alpha=0.35)
    assert model.get_layer("logits").compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"
    logits = model(np.zeros((1, 33, 35, 3), "float32"), training=False)
    assert logits.dtype == tf.float32 and logits.shape == (1, 33, 35, 5)


def test_preprocess_input():
    pixels = np.array([[[[0, 0, 0], [255, 0, 128]]]], "float32")
    np.testing.assert_allclose(preprocess_input(pixels, "xception65"),
                               [[[[-1, -1, -1], [1, -1, 128 / 127.5 - 1]]]], atol=1e-6)
    np.testing.assert_allclose(preprocess_input(pixels, "resnet101"),
                               keras.applications.resnet.preprocess_input(pixels.copy()), rtol=1e-6)


def test_check_batch_norm_batch_warns_for_one_image_per_replica():
    with pytest.warns(UserWarning, match=r"per-replica batch of 1.*mIoU ~0\.004"):
        assert check_batch_norm_batch(1) == 1
    with pytest.warns(UserWarning, match="per-replica batch of 1"):
        assert check_batch_norm_batch(1, num_replicas=4) == 1  # not synchronized
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_batch_norm_batch(1, num_replicas=2, sync_batch_norm=True) == 2
        assert check_batch_norm_batch(1, freeze_batch_norm=True) == 1
        assert check_batch_norm_batch(8, num_replicas=2) == 8
    with pytest.raises(ConfigError, match="per_replica_batch"):
        check_batch_norm_batch(0)


def test_one_step_under_two_replicas_with_sync_batch_norm_matches_one_replica(two_replica_strategy):
    """Global batch 4: one replica of 4 images vs 2 replicas of 2 with synchronized BN.

    float64, so the comparison is not blurred by the cancellation of
    E[x^2] - E[x]^2 in the synchronized variance (float32 agrees to ~1e-3 relative).
    Unsynchronized BN (statistics of 2 images) is checked to differ.
    """
    global_batch = 4
    rng = np.random.default_rng(10)
    x = rng.normal(size=(global_batch, 33, 33, 3))
    y = rng.integers(0, 3, size=(global_batch, 33, 33)).astype("int32")

    def build(sync):
        return build_deeplabv3plus(num_classes=3, backbone="mobilenetv2", alpha=0.35, dropout=0.0,
                                   sync_batch_norm=sync, batch_norm_momentum=0.5)

    def train_step(model, optimizer, images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_pixel = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                     from_logits=True)
            loss = tf.reduce_sum(tf.reduce_mean(per_pixel, axis=[1, 2])) / global_batch
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    with dtype_policy("float64"):
        keras.utils.set_random_seed(10)
        single = build(True)
        initial = single.get_weights()
        single_loss = float(train_step(single, keras.optimizers.SGD(0.5), x, y))
        expected = single.get_weights()

        batches = two_replica_strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch))
        images, labels = next(iter(batches))
        results = {}
        for sync in (True, False):
            with two_replica_strategy.scope():
                model = build(sync)
                model.set_weights(initial)
                optimizer = keras.optimizers.SGD(0.5)
            losses = two_replica_strategy.run(
                lambda a, b: train_step(model, optimizer, a, b), args=(images, labels))
            loss = float(two_replica_strategy.reduce("SUM", losses, axis=None))
            results[sync] = (loss, model.get_weights())

    def relative_difference(weights):
        update = np.sqrt(sum(((e - i) ** 2).sum() for e, i in zip(expected, initial)))
        return np.sqrt(sum(((e - w) ** 2).sum() for e, w in zip(expected, weights))) / update

    assert results[True][0] == pytest.approx(single_loss, rel=1e-9)
    assert relative_difference(results[True][1]) < 1e-8
    for e, w in zip(expected, results[True][1]):  # moving statistics included
        np.testing.assert_allclose(w, e, rtol=1e-7, atol=1e-9)
    assert relative_difference(results[False][1]) > 0.05
