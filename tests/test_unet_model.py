"""unet_tf.build_unet: the paper's / seed's network, its options and its errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import unet_tf
from segcore.errors import ConfigError

# Per-layer parameter counts of the paper's network (3x3 convs: 9*in*out + out).
PAPER_LAYER_PARAMS = {
    "down1_conv1": 640, "down1_conv2": 36_928,
    "down2_conv1": 73_856, "down2_conv2": 147_584,
    "down3_conv1": 295_168, "down3_conv2": 590_080,
    "down4_conv1": 1_180_160, "down4_conv2": 2_359_808,
    "bottom_conv1": 4_719_616, "bottom_conv2": 9_438_208,
    "up4_upconv": 2_097_664, "up4_conv1": 4_719_104, "up4_conv2": 2_359_808,
    "up3_upconv": 524_544, "up3_conv1": 1_179_904, "up3_conv2": 590_080,
    "up2_upconv": 131_200, "up2_conv1": 295_040, "up2_conv2": 147_584,
    "up1_upconv": 32_832, "up1_conv1": 73_792, "up1_conv2": 36_928,
    "logits": 130,
}


@pytest.fixture(scope="module")
def paper_unet():
    return unet_tf.build_unet()


def test_paper_network_has_31030658_parameters_and_maps_572_to_388(paper_unet):
    model = paper_unet
    assert model.count_params() == 31_030_658
    assert sum(PAPER_LAYER_PARAMS.values()) == 31_030_658
    for name, count in PAPER_LAYER_PARAMS.items():
        assert model.get_layer(name).count_params() == count, name
    assert model.input_shape == (None, 572, 572, 1)
    assert model.output_shape == (None, 388, 388, 2)
    assert model.output.dtype == "float32"
    assert model.name == "unet"


def test_paper_network_crops_4_16_40_88_and_pools_to_28(paper_unet):
    model = paper_unet
    for level, crop in zip((4, 3, 2, 1), (4, 16, 40, 88)):
        layer = model.get_layer(f"up{level}_crop")
        skip, cropped = layer.input[0].shape[1], layer.output.shape[1]
        assert (skip - cropped) // 2 == crop, level
        upconv_channels = model.get_layer(f"up{level}_upconv").output.shape[-1]
        assert model.get_layer(f"up{level}_concat").output.shape[-1] == 2 * upconv_channels
    sizes = [model.get_layer(f"down{k}_conv2").output.shape[1] for k in (1, 2, 3, 4)]
    assert sizes == [568, 280, 136, 64]
    assert model.get_layer("bottom_conv2").output.shape[1:] == (28, 28, 1024)
    assert model.get_layer("up4_upconv").output.shape[1:] == (56, 56, 512)
    assert model.get_layer("up4_upconv").get_config()["activation"] == "relu"
    assert model.get_layer("down1_pool").get_config()["pool_size"] == (2, 2)


def _seed_unet(width):
    """The seed's U-Net (shared/seeds/002) with every channel count divided by `width`."""
    c = lambda n: n // width  # noqa: E731
    layers = keras.layers
    inputs = layers.Input(shape=(572, 572, 1))
    conv0 = layers.Conv2D(c(64), activation="relu", kernel_size=3)(inputs)
    conv1 = layers.Conv2D(c(64), activation="relu", kernel_size=3)(conv0)
    conv2 = layers.MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv1)
    conv3 = layers.Conv2D(c(128), activation="relu", kernel_size=3)(conv2)
    conv4 = layers.Conv2D(c(128), activation="relu", kernel_size=3)(conv3)
    conv5 = layers.MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv4)
    conv6 = layers.Conv2D(c(256), activation="relu", kernel_size=3)(conv5)
    conv7 = layers.Conv2D(c(256), activation="relu", kernel_size=3)(conv6)
    conv8 = layers.MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv7)
    conv9 = layers.Conv2D(c(512), activation="relu", kernel_size=3)(conv8)
    conv10 = layers.Conv2D(c(512), activation="relu", kernel_size=3)(conv9)
    conv11 = layers.MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv10)
    conv12 = layers.Conv2D(c(1024), activation="relu", kernel_size=3)(conv11)
    conv13 = layers.Conv2D(c(1024), activation="relu", kernel_size=3)(conv12)
    trans01 = layers.Conv2DTranspose(c(512), kernel_size=2, strides=(2, 2),
                                     activation="relu")(conv13)
    crop01 = layers.Cropping2D(cropping=(4, 4))(conv10)
    concat01 = layers.concatenate([trans01, crop01], axis=-1)
    conv14 = layers.Conv2D(c(512), activation="relu", kernel_size=3)(concat01)
    conv15 = layers.Conv2D(c(512), activation="relu", kernel_size=3)(conv14)
    trans02 = layers.Conv2DTranspose(c(256), kernel_size=2, strides=(2, 2),
                                     activation="relu")(conv15)
    crop02 = layers.Cropping2D(cropping=(16, 16))(conv7)
    concat02 = layers.concatenate([trans02, crop02], axis=-1)
    conv16 = layers.Conv2D(c(256), activation="relu", kernel_size=3)(concat02)
    conv17 = layers.Conv2D(c(256), activation="relu", kernel_size=3)(conv16)
    trans03 = layers.Conv2DTranspose(c(128), kernel_size=2, strides=(2, 2),
                                     activation="relu")(conv17)
    crop03 = layers.Cropping2D(cropping=(40, 40))(conv4)
    concat03 = layers.concatenate([trans03, crop03], axis=-1)
    conv18 = layers.Conv2D(c(128), activation="relu", kernel_size=3)(concat03)
    conv19 = layers.Conv2D(c(128), activation="relu", kernel_size=3)(conv18)
    trans04 = layers.Conv2DTranspose(c(64), kernel_size=2, strides=(2, 2),
                                     activation="relu")(conv19)
    crop04 = layers.Cropping2D(cropping=(88, 88))(conv1)
    concat04 = layers.concatenate([trans04, crop04], axis=-1)
    conv20 = layers.Conv2D(c(64), activation="relu", kernel_size=3)(concat04)
    conv21 = layers.Conv2D(c(64), activation="relu", kernel_size=3)(conv20)
    outputs = layers.Conv2D(2, kernel_size=1)(conv21)
    return keras.Model(inputs=inputs, outputs=outputs)


def test_equals_the_seed_network_with_the_same_weights():
    """Same graph as the seed (up-conv ReLU, concat order, crops): equal outputs."""
    keras.utils.set_random_seed(1)
    seed = _seed_unet(width=16)
    ours = unet_tf.build_unet(base_filters=4)
    assert ours.count_params() == seed.count_params()
    seed_weighted = [layer for layer in seed.layers if layer.weights]
    ours_weighted = [layer for layer in ours.layers if layer.weights]
    assert len(seed_weighted) == len(ours_weighted) == 23
    for theirs, mine in zip(seed_weighted, ours_weighted):
        mine.set_weights(theirs.get_weights())
    image = np.random.default_rng(0).normal(size=(1, 572, 572, 1)).astype(np.float32)
    expected = seed(image).numpy()
    got = ours(image).numpy()
    assert got.shape == (1, 388, 388, 2)
    assert np.abs(expected).max() > 0.1  # not a dead network
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_feature_taps_by_stride_have_the_level_channels():
    image = keras.Input((204, 204, 3))
    features = unet_tf.unet_encoder(image, base_filters=8, depth=4)
    assert sorted(features) == [1, 2, 4, 8, 16]
    # valid sizes: 204 -> 200 | 100 -> 96 | 48 -> 44 | 22 -> 18 | 9 -> 5
    expected = {1: (200, 8), 2: (96, 16), 4: (44, 32), 8: (18, 64), 16: (5, 128)}
    for stride, (size, channels) in expected.items():
        assert tuple(features[stride].shape[1:]) == (size, size, channels), stride


def test_he_initialisation_is_the_papers_untruncated_gaussian():
    keras.utils.set_random_seed(2)
    model = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=16)
    kernel = model.get_layer("bottom_conv2").kernel.numpy()  # 3x3x256x256
    std = np.sqrt(2.0 / (9 * 256))
    assert kernel.std() == pytest.approx(std, rel=0.01)
    # Gaussian: 1.24% beyond 2.5 std; Keras' truncated "he_normal" has none.
    assert 0.010 < np.mean(np.abs(kernel) > 2.5 * std) < 0.015
    upconv = model.get_layer("up4_upconv").kernel.numpy()  # 2x2x128x256, N = 256 inputs
    assert upconv.shape == (2, 2, 128, 256)
    assert upconv.std() == pytest.approx(np.sqrt(2.0 / 256), rel=0.02)
    assert np.all(model.get_layer("down1_conv1").bias.numpy() == 0)


def test_invalid_static_size_names_the_nearest_valid_sizes():
    with pytest.raises(ConfigError, match="570 is not valid.*556 or 572"):
        unet_tf.build_unet(input_shape=(570, 572, 1))
    with pytest.raises(ConfigError, match="width: input size 100 .*smallest valid size: 188"):
        unet_tf.build_unet(input_shape=(572, 100, 1))
    with pytest.raises(ConfigError, match="padding must be one of valid, same"):
        unet_tf.build_unet(padding="reflect")
    with pytest.raises(ConfigError, match="upsampling must be one of"):
        unet_tf.build_unet(upsampling="bilinear")
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        unet_tf.build_unet(num_classes=0)
    with pytest.raises(ConfigError, match="dropout must be in"):
        unet_tf.build_unet(dropout=1.0)
    # depth 2: 572 is not valid (each level -4 then /2), 44 + 4k is
    with pytest.raises(ConfigError, match="depth 2"):
        unet_tf.build_unet(input_shape=(570, 570, 1), depth=2)
    shallow = unet_tf.build_unet(input_shape=(572, 572, 1), depth=2, base_filters=2)
    assert shallow.output_shape == (None, 532, 532, 2)


def test_dynamic_size_and_valid_output_size():
    keras.utils.set_random_seed(3)
    model = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=2)
    assert model.input_shape == (None, None, None, 1)
    out = model(np.zeros((2, 204, 236, 1), np.float32))
    assert out.shape == (2, 20, 52, 2)


def test_same_padding_batch_norm_resize_conv_options():
    keras.utils.set_random_seed(4)
    model = unet_tf.build_unet(input_shape=(None, None, 3), num_classes=5, base_filters=4,
                               padding="same", batch_norm=True, dropout=0.5,
                               upsampling="resize_conv")
    assert model(np.ones((1, 37, 50, 3), np.float32)).shape == (1, 37, 50, 5)
    assert model.get_layer("down1_conv1").get_config()["use_bias"] is False
    assert isinstance(model.get_layer("down1_bn1"), keras.layers.BatchNormalization)
    assert isinstance(model.get_layer("up4_resize"), keras.layers.UpSampling2D)
    assert model.get_layer("up4_upconv").kernel.shape == (3, 3, 64, 32)
    assert model.get_layer("down4_dropout").rate == 0.5
    assert model.get_layer("bottom_dropout").rate == 0.5
    valid = unet_tf.build_unet(input_shape=(204, 204, 1), base_filters=4, upsampling="resize_conv")
    assert valid.output_shape == (None, 20, 20, 2)


def test_dropout_only_when_asked_and_only_in_training():
    keras.utils.set_random_seed(5)
    plain = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=2)
    assert not [layer for layer in plain.layers if isinstance(layer, keras.layers.Dropout)]
    dropped = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=2, dropout=0.5)
    dropouts = [layer.name for layer in dropped.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == ["down4_dropout", "bottom_dropout"]
    dropped.set_weights(plain.get_weights())
    image = np.random.default_rng(1).normal(size=(1, 204, 204, 1)).astype(np.float32)
    np.testing.assert_array_equal(dropped(image, training=False).numpy(), plain(image).numpy())
    assert np.abs(dropped(image, training=True).numpy() - plain(image).numpy()).max() > 1e-3


def test_float32_logits_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=2)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("down1_conv1").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model(np.zeros((1, 188, 188, 1), np.float32)).dtype == tf.float32


def test_config_and_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(6)
    model = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=2, padding="same",
                               name="tiny")
    image = np.random.default_rng(2).normal(size=(1, 40, 33, 1)).astype(np.float32)
    expected = model(image).numpy()
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(image).numpy(), expected, atol=1e-6)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.name == "tiny"
    np.testing.assert_allclose(loaded(image).numpy(), expected, atol=1e-6)
