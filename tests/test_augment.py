"""On-device joint augmentation: one draw for image and mask, masks never interpolated."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import binary_erosion

from segcore.augment import AugmentConfig, Augmenter


def batch(seed=0, count=6, size=(40, 60), classes=3):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (count, size[0] // 10 + 1, size[1] // 10 + 1))
    labels = np.repeat(np.repeat(coarse, 10, axis=1), 10, axis=2)[:, :size[0], :size[1]]
    labels = labels.astype(np.uint8)  # 10x10 blocks: interiors survive interpolation
    # The image encodes its label (class k -> grey 60 k + 30), so they must move together.
    images = np.repeat((labels.astype(np.float32) * 60 + 30)[..., None], 3,
                       axis=-1).astype(np.uint8)
    return images, labels


def test_all_off_is_the_identity():
    images, labels = batch()
    out_images, out_labels, weights = Augmenter(AugmentConfig())(images, labels)
    np.testing.assert_array_equal(np.asarray(out_images), images)
    np.testing.assert_array_equal(np.asarray(out_labels), labels)
    assert weights is None


def test_flip_is_exact_and_shared_by_image_mask_and_weights():
    tf.random.set_seed(4)
    images, labels = batch(count=16)
    weights = labels.astype(np.float32) + 0.5
    out_images, out_labels, out_weights = Augmenter(AugmentConfig(flip=True))(images, labels,
                                                                              weights)
    flipped = 0
    for i in range(16):
        got = np.asarray(out_labels[i])
        if np.array_equal(got, labels[i, :, ::-1]):
            flipped += 1
            np.testing.assert_array_equal(np.asarray(out_images[i]), images[i, :, ::-1])
            np.testing.assert_allclose(np.asarray(out_weights[i]), weights[i, :, ::-1])
        else:
            np.testing.assert_array_equal(got, labels[i])
    assert 0 < flipped < 16


def test_zoom_out_pads_masks_with_the_ignore_label_and_images_with_the_fill():
    images, labels = batch(count=2)
    fill = (10.0, 20.0, 30.0)
    augment = Augmenter(AugmentConfig(scale=(0.5, 0.5)), ignore_label=255, image_fill=fill)
    out_images, out_labels, _ = augment(images, labels)
    out_labels = np.asarray(out_labels)
    assert np.mean(out_labels == 255) == pytest.approx(0.75, abs=0.02)  # 1/2 x 1/2 remains
    # Away from the image edge (where the bilinear image blends in), padding is the fill.
    outside = binary_erosion(out_labels == 255, iterations=2, structure=np.ones((1, 3, 3)))
    np.testing.assert_allclose(np.asarray(out_images)[outside], np.tile(fill, (outside.sum(), 1)),
                               atol=1e-4)


def test_scale_rotation_keeps_label_set_and_moves_image_with_mask():
    tf.random.set_seed(0)
    images, labels = batch(count=8, classes=3)
    augment = Augmenter(AugmentConfig(scale=(0.5, 2.0), rotation=15, flip=True), ignore_label=255)
    out_images, out_labels, _ = augment(images, labels)
    out_images, out_labels = np.asarray(out_images), np.asarray(out_labels)
    assert set(np.unique(out_labels)) <= {0, 1, 2, 255}
    # Nearest-neighbour masks vs bilinear images: inside label regions the image must
    # still show that label's grey level (up to interpolation at region borders).
    for k in range(3):
        grey = out_images[..., 0][out_labels == k]
        assert np.median(grey) == pytest.approx(60 * k + 30, abs=1)


def colour_batch(count=6, size=(9, 11)):
    """Colourful images in [60, 190]: no jitter below can push them out of [0, 255]."""
    rng = np.random.default_rng(5)
    images = rng.integers(60, 191, (count, *size, 3)).astype(np.float32)
    return images, np.zeros((count, *size), np.uint8)


def per_image_fit(before, after):
    """(slope, intercept) of each image's least-squares line after = slope * before + b,
    and the largest residual."""
    fits, residual = [], 0.0
    for x, y in zip(before.reshape(len(before), -1), after.reshape(len(after), -1)):
        slope, intercept = np.polyfit(x, y, 1)
        residual = max(residual, float(np.abs(slope * x + intercept - y).max()))
        fits.append((slope, intercept))
    return np.array(fits), residual


def test_brightness_adds_one_draw_per_image_within_its_range():
    images, labels = colour_batch()
    out, out_labels, _ = Augmenter(AugmentConfig(brightness=40.0))(images, labels, seed=(1, 2))
    shift = np.asarray(out) - images
    per_image = shift.reshape(len(images), -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-3)
    assert np.all(np.abs(per_image[:, 0]) <= 40) and np.ptp(per_image[:, 0]) > 5
    np.testing.assert_array_equal(np.asarray(out_labels), labels)


def test_contrast_scales_about_each_images_mean():
    images, labels = colour_batch()
    out = np.asarray(Augmenter(AugmentConfig(contrast=0.5))(images, labels, seed=(0, 1))[0])
    (fits, residual) = per_image_fit(images, out)
    assert residual < 1e-3
    assert np.all((0.5 <= fits[:, 0]) & (fits[:, 0] <= 1.5)) and np.ptp(fits[:, 0]) > 0.05
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), atol=1e-3)


def test_saturation_scales_colour_about_each_pixels_grey():
    images, labels = colour_batch()
    out = np.asarray(Augmenter(AugmentConfig(saturation=0.5))(images, labels, seed=(0, 1))[0])
    grey = images.mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(out.mean(axis=-1, keepdims=True), grey, atol=1e-3)
    (fits, residual) = per_image_fit(images - grey, out - grey)
    assert residual < 1e-3 and np.abs(fits[:, 1]).max() < 1e-3
    assert np.all((0.5 <= fits[:, 0]) & (fits[:, 0] <= 1.5)) and np.ptp(fits[:, 0]) > 0.05


def test_jitter_clips_to_the_pixel_range():
    images, labels = batch(count=4)
    out = np.asarray(Augmenter(AugmentConfig(brightness=200.0, contrast=0.9))(images, labels,
                                                                           seed=(0, 1))[0])
    assert out.min() == 0 and out.max() == 255


def test_a_compiled_augmenter_draws_as_the_eager_one_at_every_size():
    config = AugmentConfig(scale=(0.75, 1.5), flip=True, rotation=10, brightness=20.0)
    eager = Augmenter(config)
    compiled = tf.function(Augmenter(config), reduce_retracing=True)
    for size in ((32, 48), (17, 23)):
        images, labels = batch(count=2, size=size)
        expected = eager(images, labels, seed=(3, 4))
        got = compiled(images, labels, seed=tf.constant([3, 4]))
        assert got[0].shape[1:3] == size and got[1].shape[1:] == size
        np.testing.assert_allclose(np.asarray(got[0]), np.asarray(expected[0]), atol=1e-3)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(expected[1]))
        assert not np.array_equal(np.asarray(got[1]), labels)  # the draw did move the mask


def test_crop_size_takes_a_window_of_the_input_at_a_random_place():
    """crop_size (Cityscapes' 769 crops): the output is a crop_size window of the input."""
    tf.random.set_seed(1)
    height, width, crop = 12, 20, (5, 7)
    y, x = np.mgrid[:height, :width].astype(np.float32)
    images = np.stack([x, y, np.zeros_like(x)], axis=-1)[None].repeat(8, axis=0)
    labels = (x // 4).astype(np.uint8)[None].repeat(8, axis=0)
    weights = (1000 * y + x)[None].repeat(8, axis=0)  # linear: bilinear sampling is exact
    out_images, out_labels, out_weights = Augmenter(AugmentConfig(crop_size=crop))(
        images, labels, weights)
    assert out_images.shape == (8, 5, 7, 3) and out_labels.shape == (8, 5, 7)
    out_weights, out_images = np.asarray(out_weights), np.asarray(out_images)
    np.testing.assert_allclose(np.diff(out_weights, axis=1), 1000, atol=1e-2)  # a translation
    np.testing.assert_allclose(np.diff(out_weights, axis=2), 1, atol=1e-3)
    offset_x = out_images[:, 0, 0, 0]
    offset_y = out_images[:, 0, 0, 1]
    np.testing.assert_allclose(out_weights[:, 0, 0], 1000 * offset_y + offset_x, atol=1e-2)
    assert np.all((offset_x >= 0) & (offset_x <= width - crop[1]))
    assert np.all((offset_y >= 0) & (offset_y <= height - crop[0]))
    assert len(np.unique(np.round(offset_x, 3))) > 4  # random places, not one
    # Nearest-neighbour labels of the sampled columns: floor(x / 4) at the nearest x.
    expected = (np.floor(out_images[..., 0] + 0.5) // 4).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(out_labels), expected)


def test_crop_size_larger_than_the_input_pads_with_the_ignore_label():
    images, labels = batch(count=2, size=(40, 60))
    _, out_labels, _ = Augmenter(AugmentConfig(crop_size=(80, 60)))(images, labels)
    assert np.asarray(out_labels).shape == (2, 80, 60)
    assert np.mean(np.asarray(out_labels) == 255) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("crop_size", [(0, 5), (5,), (5.5, 4), "769"])
def test_bad_crop_size_is_refused(crop_size):
    from segcore.errors import ConfigError

    with pytest.raises(ConfigError, match="crop_size must be two positive integers"):
        AugmentConfig(crop_size=crop_size)
