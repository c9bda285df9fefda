"""segcore.analysis: the numbers the reproduction notebooks assert (seeds 001, 002, 004)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcore import analysis
from segcore.errors import ConfigError


def test_overlap_of_kernel_3_stride_2_peaks_at_4_in_2d():
    counts = analysis.transposed_conv_overlap(4, 3, 2)
    assert counts.shape == (9, 9)
    assert counts.max() == 4 and counts.min() == 1
    np.testing.assert_array_equal(analysis.transposed_conv_overlap(4, 3, 2, ndim=1),
                                  [1, 1, 2, 1, 2, 1, 2, 1, 1])


@pytest.mark.parametrize("kernel,stride", [(2, 2), (4, 2), (6, 3), (16, 8)])
def test_no_uneven_overlap_when_kernel_divisible_by_stride(kernel, stride):
    counts = analysis.transposed_conv_overlap(6, kernel, stride, ndim=1)
    inner = counts[kernel:-kernel]
    assert inner.min() == inner.max() == kernel // stride


def test_overlap_matches_a_keras_transposed_convolution_of_ones():
    layer = keras.layers.Conv2DTranspose(1, 3, strides=2, use_bias=False, kernel_initializer="ones")
    out = layer(np.ones((1, 4, 4, 1), np.float32)).numpy()[0, ..., 0]
    np.testing.assert_array_equal(out, analysis.transposed_conv_overlap(4, 3, 2))
    layer = keras.layers.Conv2DTranspose(1, 1, strides=2, use_bias=False, kernel_initializer="ones")
    out = layer(np.ones((1, 2, 2, 1), np.float32)).numpy()[0, ..., 0]
    np.testing.assert_array_equal(out, analysis.transposed_conv_overlap(2, 1, 2))


def test_stride_frequency_energy_of_a_checkerboard_noise_and_a_constant():
    board = np.indices((16, 16)).sum(axis=0) % 2
    assert analysis.stride_frequency_energy(board, 2) == pytest.approx(1.0)
    assert analysis.stride_frequency_energy(np.ones((8, 8)), 2) == 0.0
    noise = np.random.default_rng(0).normal(size=(64, 64, 3))
    # white noise: its share of bins, the Nyquist row and column (127 of 4095 non-DC bins)
    assert analysis.stride_frequency_energy(noise, 2) == pytest.approx(127 / 4095, abs=0.01)
    smooth = np.outer(np.sin(np.arange(32) / 5.0), np.cos(np.arange(32) / 7.0))
    assert analysis.stride_frequency_energy(smooth, 2) < 0.01
    with pytest.raises(ConfigError, match="divisible"):
        analysis.stride_frequency_energy(np.ones((9, 8)), 2)


def test_foreign_label_pixels_bilinear_creates_classes_nearest_does_not():
    source = np.zeros((8, 8), np.uint8)
    source[:, 4:] = 6
    big = [16, 16]
    nearest = tf.image.resize(source[..., None], big, method="nearest").numpy()[..., 0]
    bilinear = np.round(tf.image.resize(source[..., None].astype(np.float32), big).numpy()[..., 0])
    assert analysis.foreign_label_pixels(source, nearest) == 0
    # the two columns astride the boundary get 1.5 and 4.5 -> 2 and 4 (rounded half to even)
    assert analysis.foreign_label_pixels(source, bilinear) == 2 * 16
    assert set(np.unique(bilinear)) == {0, 2, 4, 6}


def test_kernel_gradient_norms_zero_layer_after_zero_layer_gets_no_gradient():
    inputs = keras.Input((4, 4, 3))
    hidden = keras.layers.Conv2D(5, 1, activation="relu", name="hidden")(inputs)
    score = keras.layers.Conv2D(2, 1, name="score")(hidden)
    model = keras.Model(inputs, score)
    images = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    labels = np.random.default_rng(2).integers(0, 2, size=(2, 4, 4))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    analysis.zero_layers(model, ["score"])
    norms = analysis.kernel_gradient_norms(model, loss, images, labels)
    assert norms["score"] > 0 and norms["hidden"] == 0.0   # zero score: no gradient upstream
    analysis.zero_layers(model, ["hidden"])
    norms = analysis.kernel_gradient_norms(model, loss, images, labels)
    assert norms == {"hidden": 0.0, "score": 0.0}           # both zero: nothing learns
    with pytest.raises(ConfigError, match="no layer"):
        analysis.zero_layers(model, ["nope"])


def test_layer_table_rows():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="up")(inputs)
    model = keras.Model(inputs, x)
    (row,) = analysis.layer_table(model, ["up"])
    assert row == {"name": "up", "class": "Conv2DTranspose", "kernel": (4, 4), "strides": (2, 2),
                   "output_shape": (16, 16, 4), "parameters": 4 * 4 * 3 * 4 + 4}
    assert analysis.trainable_parameters(model) == 196


def test_notebook_find_data_uses_samples_at_ci_and_names_missing_folders(tmp_path, monkeypatch,
                                                                         datasets_root):
    from segcore import notebook
    from segcore.errors import DataError

    said = []
    path, kind = notebook.find_data("isbi2012", "ci", echo=said.append)
    assert kind == "samples" and path == os.path.join(os.path.abspath(datasets_root), "isbi2012")
    assert "ci scale" in said[0]
    monkeypatch.setenv("SEGCORE_DATASETS", str(tmp_path))
    with pytest.raises(DataError, match="neither"):
        notebook.find_data("camvid", "full", echo=said.append)
    with pytest.raises(ConfigError, match="SEGCORE_NOTEBOOK_SCALE"):
        notebook.find_data("camvid", "huge")


def test_boundary_band_and_accuracy():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, 5:] = 1
    band = analysis.boundary_band(labels, 1)
    # the edge pixels are columns 4 and 5; within 1 px: columns 3..6
    np.testing.assert_array_equal(band.any(axis=0), [False] * 3 + [True] * 4 + [False] * 3)
    assert not analysis.boundary_band(np.zeros((4, 4)), 3).any()
    predictions = np.zeros_like(labels)          # all class 0: right on columns 3, 4
    assert analysis.boundary_accuracy(labels, predictions, 1) == (20, 40)
    labels[0, :] = 255                           # ignored pixels are not counted
    # band: rows 1-2 (next to the void row; row 0 is ignored) and columns 3-6 of rows 3-9
    assert analysis.boundary_accuracy(labels, predictions, 1) == (10 + 14, 20 + 28)
