"""segcore.class_balance: median frequency balancing, and the CamVid weights of the
camvid_mobilenetv2_voc preset recomputed from the real CamVid train labels."""

import numpy as np
import pytest

from segcore import data as datasets
from segcore.class_balance import median_frequency_weights
from segcore.errors import DataError


def test_median_frequency_weights_by_hand():
    # image 1: class 0 x 3, class 1 x 1 (4 px); image 2: class 0 x 2, class 2 x 2, ignored x 4
    labels = [np.array([0, 0, 0, 1]), np.array([0, 0, 2, 2, 255, 255, 255, 255])]
    # freq: class 0 = 5 / 8, class 1 = 1 / 4, class 2 = 2 / 4; median 1/2
    weights = median_frequency_weights(labels, 4)
    np.testing.assert_allclose(weights, [0.5 / 0.625, 0.5 / 0.25, 1.0, 0.0])
    with pytest.raises(DataError, match="no labelled pixels"):
        median_frequency_weights([np.full(4, 255)], 3)


def test_camvid_preset_weights_are_the_train_labels_median_frequencies(datasets_root):
    from deeplab_tf.presets import CAMVID_MEDIAN_FREQUENCY, PRESETS

    train = datasets.load("camvid", f"{datasets_root}/camvid", "train")
    weights = median_frequency_weights((labels.numpy() for _, labels in train), 11)
    np.testing.assert_allclose(weights, CAMVID_MEDIAN_FREQUENCY, atol=5e-5)
    assert PRESETS["camvid_mobilenetv2_voc"].class_weights == list(CAMVID_MEDIAN_FREQUENCY)
    # the rare classes (pole, sign, pedestrian, bicyclist) weigh most, road least
    assert np.argmin(weights) == 3 and set(np.argsort(weights)[-4:]) == {2, 6, 9, 10}
