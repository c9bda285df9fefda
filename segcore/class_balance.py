"""Median frequency balancing of class weights (Eigen and Fergus, ICCV 2015), as SegNet
weighs CamVid's classes.

    weight(c) = median_c(freq) / freq(c),  freq(c) = pixels of class c / pixels of the
                                                      images in which c appears

Ignored pixels (the ignore label, or any value >= num_classes) count nowhere. A class
that appears in no image gets weight 0. The weights go to `TrainConfig.class_weights`
(the loss multiplies each pixel's cross-entropy by its class's weight).
"""

import numpy as np

from segcore.errors import DataError


def median_frequency_weights(labels, num_classes, ignore_label=255):
    """Class weights of an iterable of label arrays (class ids, any shape)."""
    pixels = np.zeros(num_classes, np.float64)
    image_pixels = np.zeros(num_classes, np.float64)
    for label in labels:
        label = np.asarray(label).ravel()
        valid = label[(label != ignore_label) & (label < num_classes)].astype(np.int64)
        counts = np.bincount(valid, minlength=num_classes)[:num_classes]
        pixels += counts
        image_pixels += (counts > 0) * valid.size
    if not pixels.any():
        raise DataError("median frequency balancing: no labelled pixels")
    present = image_pixels > 0
    frequency = np.zeros(num_classes)
    frequency[present] = pixels[present] / image_pixels[present]
    weights = np.zeros(num_classes)
    weights[present] = np.median(frequency[present]) / frequency[present]
    return weights
