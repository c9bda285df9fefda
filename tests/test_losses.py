"""Ignore-aware cross-entropy: values computed by hand."""

import numpy as np
import pytest

from segcore.errors import ConfigError
from segcore.losses import SegmentationCrossEntropy

# Two pixels per image, 2 classes. Logits (0, ln 3) give softmax (1/4, 3/4).
LOGITS = np.array([[[[0.0, np.log(3.0)], [0.0, np.log(3.0)]]]], np.float32)  # [1, 1, 2, 2]


def test_ignored_and_out_of_range_pixels_carry_no_loss():
    labels = np.array([[[1, 255]]], np.uint8)
    loss = SegmentationCrossEntropy(2)(labels, LOGITS)
    assert float(loss) == pytest.approx(-np.log(0.75), rel=1e-6)  # the labelled pixel only
    labels = np.array([[[0, 7]]], np.uint8)  # 7 >= num_classes: dropped like the ignore label
    assert float(SegmentationCrossEntropy(2)(labels, LOGITS)) == pytest.approx(-np.log(0.25),
                                                                               rel=1e-6)


def test_mean_over_valid_pixels_and_class_weights():
    labels = np.array([[[0, 1]]], np.uint8)
    plain = float(SegmentationCrossEntropy(2)(labels, LOGITS))
    assert plain == pytest.approx((np.log(4) + np.log(4 / 3)) / 2, rel=1e-6)
    weighted = float(SegmentationCrossEntropy(2, class_weights=[3.0, 1.0])(labels, LOGITS))
    assert weighted == pytest.approx((3 * np.log(4) + np.log(4 / 3)) / 4, rel=1e-6)


def test_pixel_weights_and_unnormalised_sum():
    labels = np.array([[[0, 1]]], np.uint8)
    weights = np.array([[[2.0, 0.5]]], np.float32)
    loss = SegmentationCrossEntropy(2)(labels, LOGITS, sample_weight=weights)
    assert float(loss) == pytest.approx((2 * np.log(4) + 0.5 * np.log(4 / 3)) / 2.5, rel=1e-6)
    total = SegmentationCrossEntropy(2, normalization="none")(labels, LOGITS)
    assert float(total) == pytest.approx(np.log(4) + np.log(4 / 3), rel=1e-6)


def test_all_ignored_batch_gives_zero_not_nan():
    labels = np.full((1, 1, 2), 255, np.uint8)
    assert float(SegmentationCrossEntropy(2)(labels, LOGITS)) == 0.0


def test_bfloat16_logits_give_a_float32_loss():
    import tensorflow as tf
    loss = SegmentationCrossEntropy(2)(np.array([[[0, 1]]]), tf.cast(LOGITS, tf.bfloat16))
    assert loss.dtype == tf.float32


def test_bad_options():
    with pytest.raises(ConfigError, match="class_weights has 3 entries; expected num_classes=2"):
        SegmentationCrossEntropy(2, class_weights=[1, 2, 3])
    with pytest.raises(ConfigError, match="normalization must be 'valid' or 'none'"):
        SegmentationCrossEntropy(2, normalization="batch")
