"""Valid-size arithmetic and overlap-tile prediction (unet_tf.tiling)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import unet_tf
from segcore.errors import ConfigError
from unet_tf import tiling

TILE = 236  # output 52, stepped by 48: three different tile strides in the tests below


@pytest.fixture(scope="module")
def small_unet():
    """Depth-4 valid U-Net, 2 channels at the first level, random weights."""
    keras.utils.set_random_seed(11)
    return unet_tf.build_unet(input_shape=(None, None, 1), base_filters=2)


def _reference(model, image, tile_size):
    """Prediction of one big valid input: the numpy-mirrored image, cropped to H x W."""
    height, width = image.shape[:2]
    layout = unet_tf.tile_layout(height, width, tile_size)
    b = layout["border"]
    padded_h, padded_w = layout["padded"]
    pads = ((b, padded_h - height - b), (b, padded_w - width - b), (0, 0))
    big = np.pad(image, pads, mode="reflect")
    return tf.nn.softmax(model(big[None])).numpy()[0, :height, :width]


def test_output_size_border_and_valid_sizes_golden():
    assert unet_tf.output_size(572) == 388
    assert unet_tf.border() == 92
    assert unet_tf.minimum_input_size() == 188 and unet_tf.output_size(188) == 4
    assert unet_tf.valid_input_sizes(572, count=3) == [556, 572, 588]
    assert unet_tf.valid_input_sizes(100, count=2) == [188, 204]
    assert unet_tf.input_size_for_output(388) == 572
    assert unet_tf.input_size_for_output(389) == 588
    assert unet_tf.input_size_for_output(16) == 204
    assert tiling.tile_step(572) == 384 and tiling.tile_step(TILE) == 48
    valid = [n for n in range(1, 1200) if tiling.is_valid_input_size(n)]
    assert valid == list(range(188, 1200, 16))
    assert all(unet_tf.output_size(n) == n - 184 for n in valid)
    # depth 2: border 2 * (3 * 4 - 2) = 20, sizes 44 + 4k
    assert unet_tf.border(2) == 20 and unet_tf.minimum_input_size(2) == 44
    assert [n for n in range(1, 70) if tiling.is_valid_input_size(n, 2)] == list(range(44, 70, 4))


def test_arithmetic_matches_keras_shapes():
    for depth, sizes in ((2, (44, 60, 101)), (3, (92, 100, 108))):
        model = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=1, depth=depth)
        for size in sizes:
            if tiling.is_valid_input_size(size, depth):
                out = model.compute_output_shape((1, size, size, 1))
                assert out[1] == unet_tf.output_size(size, depth)
            else:
                with pytest.raises(ConfigError):
                    unet_tf.output_size(size, depth)


def test_invalid_sizes_raise_config_error_naming_neighbours():
    with pytest.raises(ConfigError, match="nearest valid sizes: 556 or 572"):
        unet_tf.output_size(570)
    with pytest.raises(ConfigError, match="nearest valid sizes: 572 or 588"):
        unet_tf.output_size(573)
    with pytest.raises(ConfigError, match="smallest valid size: 188"):
        unet_tf.output_size(187)
    with pytest.raises(ConfigError, match="input size must be an integer"):
        unet_tf.output_size(572.0)
    with pytest.raises(ConfigError, match="use a tile of at least 204"):
        tiling.tile_step(188)


def test_valid_unet_commutes_with_shifts_of_16_not_8(small_unet):
    """Why tiles are stepped by multiples of 16: the pooling period."""
    image = np.random.default_rng(0).random((1, TILE + 16, TILE + 16, 1)).astype(np.float32)
    full = small_unet(image).numpy()  # 68 x 68
    shifted16 = small_unet(image[:, 16:, 16:]).numpy()  # 52 x 52
    np.testing.assert_allclose(shifted16, full[:, 16:, 16:], atol=1e-5)
    shifted8 = small_unet(image[:, 8:8 + TILE, 8:8 + TILE]).numpy()
    assert np.abs(shifted8 - full[:, 8:60, 8:60]).max() > 1e-2


@pytest.mark.parametrize("height, width", [(1, 1), (5, 7), (100, 37), (130, 200)])
def test_stitched_tiles_equal_one_big_valid_prediction(small_unet, height, width):
    image = np.random.default_rng(height * width).random((height, width, 1)).astype(np.float32)
    got = unet_tf.predict_tiled(small_unet, image, tile_size=TILE, batch_size=3)
    assert got.dtype == tf.float32 and got.shape == (height, width, 2)
    got = got.numpy()
    np.testing.assert_allclose(got, _reference(small_unet, image, TILE), atol=1e-4)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_layout_of_a_non_square_image():
    layout = unet_tf.tile_layout(130, 200, TILE)
    assert layout == {"border": 92, "step": 48, "tiles": (3, 5), "padded": (332, 428)}
    assert unet_tf.tile_layout(512, 512, 572)["tiles"] == (2, 2)


def test_tiling_inside_tf_function_with_dynamic_image_size(small_unet):
    @tf.function(input_signature=[tf.TensorSpec([None, None, 1], tf.float32)])
    def serve(image):
        return unet_tf.predict_tiled(small_unet, image, tile_size=TILE, batch_size=2)

    rng = np.random.default_rng(7)
    for height, width in ((61, 130), (9, 4)):
        image = rng.random((height, width, 1)).astype(np.float32)
        got = serve(tf.constant(image)).numpy()
        assert got.shape == (height, width, 2)
        eager = unet_tf.predict_tiled(small_unet, image, tile_size=TILE, batch_size=2).numpy()
        np.testing.assert_allclose(got, eager, atol=1e-5)
        np.testing.assert_allclose(got, _reference(small_unet, image, TILE), atol=1e-4)
    assert serve.experimental_get_tracing_count() == 1


def test_saved_model_tiles_in_its_graph(small_unet, tmp_path):
    module = tf.Module()
    module.model = small_unet
    module.serve = tf.function(
        lambda image: unet_tf.predict_tiled(small_unet, image, tile_size=TILE),
        input_signature=[tf.TensorSpec([None, None, 1], tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "tiled"))
    loaded = tf.saved_model.load(str(tmp_path / "tiled"))
    image = np.random.default_rng(8).random((70, 51, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.serve(tf.constant(image)).numpy(),
                               _reference(small_unet, image, TILE), atol=1e-4)


def test_batch_helper_equals_per_image(small_unet):
    images = np.random.default_rng(9).random((2, 50, 20, 1)).astype(np.float32)
    batch = unet_tf.predict_tiled_batch(small_unet, images, tile_size=TILE).numpy()
    for k in range(2):
        single = unet_tf.predict_tiled(small_unet, images[k], tile_size=TILE).numpy()
        np.testing.assert_allclose(batch[k], single, atol=1e-6)


def test_mirror_pad_reflects_repeatedly_for_tiny_images():
    np.testing.assert_array_equal(
        tiling.mirror_indices(3, 7, 7).numpy(), [1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1]
    )
    np.testing.assert_array_equal(tiling.mirror_indices(1, 2, 3).numpy(), [0] * 6)
    image = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    got = unet_tf.mirror_pad(image, 5, 6, 7, 2).numpy()
    expected = np.pad(image, ((0, 0), (5, 6), (7, 2), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(got, expected)


def test_tile_size_errors(small_unet):
    with pytest.raises(ConfigError, match="nearest valid sizes: 556 or 572"):
        unet_tf.predict_tiled(small_unet, np.zeros((8, 8, 1)), tile_size=570)
    with pytest.raises(ConfigError, match="use a tile of at least 204"):
        unet_tf.predict_tiled(small_unet, np.zeros((8, 8, 1)), tile_size=188)
    fixed = unet_tf.build_unet(input_shape=(204, 204, 1), base_filters=1)
    with pytest.raises(ConfigError, match="differs from the model's input size 204x204"):
        unet_tf.predict_tiled(fixed, np.zeros((8, 8, 1)), tile_size=TILE)
    assert unet_tf.predict_tiled(fixed, np.zeros((8, 8, 1))).shape == (8, 8, 2)
    same = unet_tf.build_unet(input_shape=(None, None, 1), base_filters=1, padding="same")
    with pytest.raises(ConfigError, match="maps a 236-pixel tile to 236x236, not the 52"):
        unet_tf.predict_tiled(same, np.zeros((8, 8, 1)), tile_size=TILE)
    with pytest.raises(ConfigError, match=r"image must be \[height, width, channels\]"):
        unet_tf.predict_tiled(small_unet, np.zeros((8, 8)))


def test_predict_dihedral_averages_the_orientations_mapped_back():
    """A predictor that depends on the column index (not rotation-equivariant): the
    average equals the 4 or 8 versions written out by hand; an equivariant one is
    returned unchanged; other counts are refused."""
    images = tf.reshape(tf.range(2 * 3 * 5, dtype=tf.float32), [2, 3, 5, 1])

    def ramp(x):  # probabilities-like output: the input plus its column index
        columns = tf.cast(tf.range(tf.shape(x)[2]), tf.float32)[None, None, :, None]
        return x + columns

    x = images.numpy()[..., 0]
    by_hand4 = np.mean([np.rot90(np.rot90(x, k, axes=(1, 2)) + np.arange(x.shape[2 - k % 2]),
                                 -k, axes=(1, 2)) for k in range(4)], axis=0)
    got4 = unet_tf.predict_dihedral(ramp, images, 4).numpy()[..., 0]
    np.testing.assert_allclose(got4, by_hand4, rtol=0, atol=1e-5)
    # Pixel (0, 0) of the 3x5 image 0 (value 0) lands in column 0, 0, 4 and 2 of the
    # versions turned by 0, 90, 180 and 270 degrees counter-clockwise.
    assert got4[0, 0, 0] == pytest.approx((0 + 0 + 4 + 2) / 4)
    mirrored = x[:, :, ::-1]
    by_hand8 = (by_hand4 + np.mean([np.rot90(np.rot90(mirrored, k, axes=(1, 2))
                                             + np.arange(x.shape[2 - k % 2]), -k,
                                             axes=(1, 2)) for k in range(4)],
                                   axis=0)[:, :, ::-1]) / 2
    np.testing.assert_allclose(unet_tf.predict_dihedral(ramp, images, 8).numpy()[..., 0],
                               by_hand8, rtol=0, atol=1e-5)
    same = unet_tf.predict_dihedral(tf.identity, images, 8)
    np.testing.assert_allclose(same.numpy(), images.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(unet_tf.predict_dihedral(ramp, images, 1), ramp(images))
    with pytest.raises(ConfigError, match="eval_rotations must be one of"):
        unet_tf.predict_dihedral(ramp, images, 2)
