"""segcore.elastic: joint elastic deformation of image, mask and weight map."""

import numpy as np
import pytest
import tensorflow as tf

from segcore.elastic import apply_displacement, elastic_deform, random_displacement
from segcore.errors import ConfigError


def _batch(rng, batch=2, height=40, width=56):
    images = rng.random((batch, height, width, 3)).astype(np.float32)
    masks = rng.choice(np.array([0, 3, 7], np.uint8), size=(batch, height, width))
    weights = rng.random((batch, height, width)).astype(np.float32)
    return images, masks, weights


def test_zero_sigma_is_exactly_the_identity():
    images, masks, weights = _batch(np.random.default_rng(0))
    out = elastic_deform(images, masks, weights, sigma=0.0, seed=1)
    np.testing.assert_array_equal(out[0].numpy(), images)
    np.testing.assert_array_equal(out[1].numpy(), masks)
    np.testing.assert_array_equal(out[2].numpy(), weights)
    assert out[1].dtype == tf.uint8 and out[2].dtype == tf.float32


def test_mask_keeps_its_label_set_and_shapes():
    images, masks, weights = _batch(np.random.default_rng(1))
    out_images, out_masks, out_weights = elastic_deform(images, masks[..., None], weights, seed=2)
    assert out_images.shape == images.shape and out_masks.shape == masks[..., None].shape
    assert set(np.unique(out_masks.numpy())) == {0, 3, 7}
    assert np.mean(out_masks.numpy()[..., 0] != masks) > 0.2  # it did move
    _, ignored = elastic_deform(images, masks, sigma=30.0, fill="ignore", seed=2)
    values = set(np.unique(ignored.numpy()))
    assert values <= {0, 3, 7, 255} and 255 in values


def test_image_mask_and_weights_move_together():
    image = np.zeros((2, 48, 48, 1), np.float32)
    mask = np.zeros((2, 48, 48), np.int32)
    image[:, 20:26, 18:24] = 1.0
    mask[:, 20:26, 18:24] = 1
    weights = 2.0 * image[..., 0]
    out_image, out_mask, out_weights = elastic_deform(image, mask, weights, sigma=10.0, seed=3)
    out_image, out_mask = out_image.numpy()[..., 0], out_mask.numpy()
    out_weights = out_weights.numpy()
    assert not np.array_equal(out_mask, mask)
    assert out_mask.sum() > 0
    # nearest source pixel inside the blob <=> bilinear value >= 1/4; outside <=> < 1/2
    assert out_image[out_mask == 1].min() >= 0.25
    assert out_image[out_mask == 0].max() < 0.5
    np.testing.assert_allclose(out_weights, 2.0 * out_image, atol=1e-6)
    # each example gets its own draw
    assert not np.array_equal(out_mask[0], out_mask[1])


def test_constant_displacements_golden():
    image = np.arange(5 * 6, dtype=np.float32).reshape(1, 5, 6, 1)
    mask = np.arange(5 * 6, dtype=np.int32).reshape(1, 5, 6)
    shift = np.zeros((1, 5, 6, 2), np.float32)
    shift[..., 1] = 3.0  # output (y, x) <- input (y, x + 3), mirrored past the right edge
    out_image, out_mask = apply_displacement(image, mask, displacement=shift)
    columns = [3, 4, 5, 4, 3, 2]
    np.testing.assert_array_equal(out_image.numpy()[0, :, :, 0], image[0, :, columns, 0].T)
    np.testing.assert_array_equal(out_mask.numpy()[0], mask[0][:, columns])
    half = np.zeros((1, 5, 6, 2), np.float32)
    half[..., 0] = -0.5  # half a pixel up: mean of rows y - 1 and y (mirrored at the top)
    out_image, out_mask = apply_displacement(image, mask, displacement=half)
    rows = np.array([1, 0, 1, 2, 3])
    expected = 0.5 * (image[0, :, :, 0] + image[0, rows, :, 0])
    np.testing.assert_allclose(out_image.numpy()[0, :, :, 0], expected, atol=1e-6)
    # y - 0.5 rounds half up to y; row 0 reads -0.5, mirrored to +0.5, which rounds to 1
    np.testing.assert_array_equal(out_mask.numpy()[0], mask[0][[1, 1, 2, 3, 4]])
    _, ignored = apply_displacement(image, mask, displacement=shift, fill="ignore", ignore_label=-1)
    np.testing.assert_array_equal(ignored.numpy()[0, :, 3:], -1)
    np.testing.assert_array_equal(ignored.numpy()[0, :, :3], mask[0, :, 3:])


def test_coarse_displacements_have_10_pixel_standard_deviation():
    field = random_displacement(2000, 3, 3, grid=3, sigma=10.0, seed=4).numpy()
    assert field.shape == (2000, 3, 3, 2)  # resize 3x3 -> 3x3 keeps the grid values
    assert field.std() == pytest.approx(10.0, rel=0.02)
    assert abs(field.mean()) < 0.2
    smooth = random_displacement(1, 200, 200, seed=4).numpy()[0]
    assert np.abs(np.diff(smooth, axis=0)).max() < 1.0  # bicubic: smooth per-pixel field
    assert np.abs(smooth).max() > 5.0


def test_runs_in_tf_function_with_dynamic_shapes_and_is_reproducible():
    images, masks, weights = _batch(np.random.default_rng(5))

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32),
        tf.TensorSpec([None, None, None], tf.uint8),
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([2], tf.int64),
    ])
    def deform(images, masks, weights, seed):
        return elastic_deform(images, masks, weights, seed=seed)

    seed = tf.constant([6, 0], tf.int64)
    graph = deform(images, masks, weights, seed)
    eager = elastic_deform(images, masks, weights, seed=seed)
    for g, e in zip(graph, eager):
        np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-5)
    other = deform(images[:1, :17, :23], masks[:1, :17, :23], weights[:1, :17, :23], seed)
    assert other[0].shape == (1, 17, 23, 3)
    assert deform.experimental_get_tracing_count() == 1
    generator = tf.random.Generator.from_seed(7)
    a = elastic_deform(images, masks, rng=generator)[1].numpy()
    b = elastic_deform(images, masks, rng=tf.random.Generator.from_seed(7))[1].numpy()
    np.testing.assert_array_equal(a, b)


def test_single_example_and_errors():
    image = np.random.default_rng(8).random((20, 30, 1)).astype(np.float32)
    mask = np.zeros((20, 30), np.int32)
    out_image, out_mask = elastic_deform(image, mask, seed=9)
    assert out_image.shape == (20, 30, 1) and out_mask.shape == (20, 30)
    with pytest.raises(ConfigError, match="fill must be one of reflect, ignore"):
        elastic_deform(image, mask, fill="zeros")
    with pytest.raises(ConfigError, match="grid must be an integer >= 2"):
        elastic_deform(image, mask, grid=1)
