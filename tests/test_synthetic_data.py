"""The generated datasets of the U-Net and DeepLab trainers: deterministic per
(split, index, seed), labels in range, class histograms fixed by the seed."""

import numpy as np
import pytest

from segcore import data as datasets
from segcore.data import synthetic_membranes, synthetic_shapes
from segcore.errors import DataError

# Pixel counts of classes (0, 1, 2, 3, 255) over the first 3 scenes, seed 0.
GOLDEN = {
    ("synthetic_membranes", "train"): [10311, 1977, 0, 0, 0],
    ("synthetic_membranes", "val"): [9498, 2790, 0, 0, 0],
    ("synthetic_shapes", "train"): [10132, 1174, 0, 444, 925],
    ("synthetic_shapes", "val"): [10715, 784, 112, 247, 817],
}
SIZES = {"synthetic_membranes": (64, 64), "synthetic_shapes": (65, 65)}
MODULES = {"synthetic_membranes": synthetic_membranes, "synthetic_shapes": synthetic_shapes}


def histogram(labels):
    return np.bincount(labels.ravel(), minlength=256)[[0, 1, 2, 3, 255]].tolist()


@pytest.mark.parametrize("name, split", sorted(GOLDEN))
def test_class_histograms_are_fixed_by_the_seed(name, split):
    images, labels = MODULES[name].arrays(split, SIZES[name], count=3, seed=0)
    assert images.shape == (3, *SIZES[name], 3) and images.dtype == np.uint8
    assert labels.shape == (3, *SIZES[name]) and labels.dtype == np.uint8
    assert histogram(labels) == GOLDEN[(name, split)]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_scene_depends_on_split_index_and_seed_only(name):
    module, size = MODULES[name], SIZES[name]
    images, labels = module.arrays("train", size, count=3, seed=5)
    image, label = module.sample("train", 2, size, seed=5)
    np.testing.assert_array_equal(image, images[2])
    np.testing.assert_array_equal(label, labels[2])
    again = module.arrays("train", size, count=2, seed=5)  # count does not change scenes
    np.testing.assert_array_equal(again[0], images[:2])
    for other in (module.sample("val", 2, size, seed=5), module.sample("train", 2, size, seed=6),
                  module.sample("train", 1, size, seed=5)):
        assert np.mean(other[0] != image) > 0.5


def test_labels_are_in_range():
    _, membranes = synthetic_membranes.arrays("train", (48, 56), count=4, seed=3)
    assert set(np.unique(membranes)) == {0, 1}
    _, shapes = synthetic_shapes.arrays("train", (48, 56), count=8, seed=3)
    assert set(np.unique(shapes)) == {0, 1, 2, 3, 255}
    assert synthetic_membranes.INFO.num_classes == 2 and synthetic_shapes.INFO.num_classes == 4


def test_membranes_look_like_isbi():
    images, labels = synthetic_membranes.arrays("train", (128, 128), count=4, seed=0)
    fraction = labels.mean()
    assert 0.12 < fraction < 0.25  # ISBI 2012: about 22 % membrane
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey, 3 equal channels
    grey = images[..., 0].astype(np.float64)
    assert grey[labels == 0].mean() - grey[labels == 1].mean() > 30  # dark membranes


def test_void_band_separates_shapes_from_background():
    _, banded = synthetic_shapes.arrays("val", (65, 65), count=3, seed=0)
    _, plain = synthetic_shapes.arrays("val", (65, 65), count=3, seed=0, void_band=False)
    band = banded == 255
    assert 0 < band.mean() < 0.15 and not np.any(plain == 255)
    np.testing.assert_array_equal(banded[~band], plain[~band])


def test_registry_reads_the_generated_datasets():
    dataset = datasets.load("synthetic_membranes", split="val", size=(32, 40), count=2)
    pairs = list(dataset.as_numpy_iterator())
    assert len(pairs) == 2 and pairs[0][0].shape == (32, 40, 3) and pairs[0][1].shape == (32, 40)
    expected = synthetic_membranes.sample("val", 1, (32, 40))
    np.testing.assert_array_equal(pairs[1][0], expected[0])
    assert datasets.info("synthetic_shapes").class_names == ("background", "disc", "rectangle",
                                                             "triangle")


@pytest.mark.parametrize("kwargs, text", [
    ({"split": "training"}, "unknown split 'training'"),
    ({"size": (4, 64)}, "size must be (height, width) >= 8"),
    ({"count": -1}, "count must be a non-negative integer"),
])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_bad_arguments_raise_data_error(name, kwargs, text):
    with pytest.raises(DataError, match=name) as error:
        MODULES[name].read(**kwargs)
    assert text in str(error.value) and "\n" not in str(error.value)
