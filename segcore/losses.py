"""Pixel-wise softmax cross-entropy with an ignore label.

Pixels whose label is the ignore label, or outside [0, num_classes), carry no
loss. Optional per-class weights (`class_weights`) and per-pixel weights (the
`sample_weight` given by the data, e.g. U-Net's border weight map) multiply
each pixel's loss. Normalisation:

* "valid": divide by the summed weight of the valid pixels of the batch
  (the mean over labelled pixels; with no weights, the mean over valid pixels);
* "none": the plain sum over pixels, the Caffe reference's
  `loss_param { normalize: false }` used by the FCN nets with lr 1e-10...1e-14.

Logits are cast to float32 first, so the loss stays float32 under mixed precision.

Under a distribution strategy, "valid" divides each replica's sum by the summed
weight of the *global* batch (an all-reduce), and replicas' gradients are
summed: the result is exactly the single-device mean over the global batch,
however the ignored pixels fall between replicas. "none" needs no scaling (a
sum of per-replica sums is the global sum).
"""

import keras
import tensorflow as tf

from segcore.data.info import IGNORE_LABEL
from segcore.errors import ConfigError


def _as_labels(y_true):
    labels = tf.convert_to_tensor(y_true)
    if labels.shape.rank == 4:
        labels = labels[..., 0]
    return tf.cast(labels, tf.int32)


@keras.saving.register_keras_serializable(package="segcore")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Sparse softmax cross-entropy on logits [B, H, W, C] with labels [B, H, W]."""

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, class_weights=None,
                 normalization="valid", name="segmentation_cross_entropy", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        if normalization not in ("valid", "none"):
            raise ConfigError(
                f"loss normalization must be 'valid' or 'none', got {normalization!r}")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ConfigError(
                f"class_weights has {len(class_weights)} entries; "
                f"expected num_classes={num_classes}")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.normalization = normalization

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.compute(y_true, y_pred, sample_weight)

    def compute(self, y_true, y_pred, sample_weight=None):
        logits = tf.cast(y_pred, tf.float32)
        labels = _as_labels(y_true)
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        if self.ignore_label is not None:
            valid = tf.logical_and(valid, labels != self.ignore_label)
        safe = tf.where(valid, labels, tf.zeros_like(labels))
        pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
        weights = tf.cast(valid, tf.float32)
        if self.class_weights is not None:
            weights *= tf.gather(tf.constant(self.class_weights, tf.float32), safe)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, tf.float32)
            if sample_weight.shape.rank == 4:
                sample_weight = sample_weight[..., 0]
            weights *= sample_weight
        total = tf.reduce_sum(pixel_loss * weights)
        if self.normalization == "none":
            return total
        weight_sum = tf.reduce_sum(weights)
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            weight_sum = replica.all_reduce(tf.distribute.ReduceOp.SUM, weight_sum)
        return tf.math.divide_no_nan(total, weight_sum)

    def call(self, y_true, y_pred):
        return self.compute(y_true, y_pred)

    def get_config(self):
        return {
            "name": self.name, "num_classes": self.num_classes,
            "ignore_label": self.ignore_label, "class_weights": self.class_weights,
            "normalization": self.normalization,
        }
