"""`python -m deeplab_tf.train`: train DeepLabv3+ (Chen et al., ECCV 2018).

With no arguments it trains a small MobileNetV2 DeepLabv3+ on generated shape
scenes (`synthetic_shapes`, no download) and writes runs/synthetic_deeplab/.
The paper's VOC recipe:

    python -m deeplab_tf.train --preset voc_xception65_os16 --data-dir data/VOCdevkit/VOC2012

`--help` lists the common and model flags; `--list-presets` the presets and
their target figures. Two more flags set the inference of the evaluation and of
the exported SavedModel (DeepLabv3 Sec. 4.3, `deeplab_tf.predict_multiscale`):

    --eval-scales 0.5 0.75 1.0 1.25 1.5 1.75   average the softmax over these scales
    --eval-flip true                            and over left-right flips

They are stored in config.json as model fields ``eval_scales`` / ``eval_flip``.

Family choices:

* Preprocessing: RGB [0, 255] -> [-1, 1] (Xception and MobileNetV2 weights).
  For ResNet backbones the network starts with a layer that maps [-1, 1] back
  to the keras.applications "caffe" input (BGR minus the ImageNet mean), so one
  family preprocessing serves every backbone. Augmentation pads with 127.5
  (0 after preprocessing), the reference's mean pixel.
* Weight decay: the reference's L2 regulariser, ``l2_weight_decay * sum(w**2) / 2``
  (TF-slim `l2_regularizer`) added to the loss, on the kernels of regular and
  pointwise convolutions and the logits; depthwise kernels, biases and batch
  norm are not decayed (`regularize_depthwise=False`). It is attached to the
  network's variables here; the engine's `--weight-decay` (decoupled, applied by
  the optimiser) is a different thing under momentum and stays 0 in the presets.
* Batch norm: `check_batch_norm_batch` is called with the per-replica batch
  (global batch / replicas): a warning when statistics would be trained on one
  image. ``sync_batch_norm`` averages them over replicas.
* Evaluation at the image's own size (the network takes any size): no resize;
  scales and flips as above.
* Weights: "auto" = ImageNet (keras.applications) for resnet50/101 and
  mobilenetv2 when available, else random with a warning; Xception-65 has no
  ImageNet checkpoint here (random initialisation, recorded in config.json).
"""

import logging
import sys

import keras
import tensorflow as tf

from deeplab_tf.inference import predict_multiscale
from deeplab_tf.model import (
    IMAGENET_BACKBONES,
    build_deeplabv3plus,
    check_batch_norm_batch,
    preprocess_input,
)
from deeplab_tf.presets import DEFAULT_PRESET, PRESETS
from segcore import cli
from segcore.errors import ConfigError
from segcore.imagenet import IMAGENET_MEAN_BGR
from segcore.layers import all_layers
from segcore.options import ModelOptions
from segcore.pretrained import build_with_weights
from segcore.training import ModelFamily, train_and_evaluate  # noqa: F401 (public)

log = logging.getLogger("deeplab_tf.train")

PROG = "python -m deeplab_tf.train"


def family_options(l2_weight_decay: float = 0.0, eval_scales: tuple[float, ...] = (1.0,),
                   eval_flip: bool = False):
    """The DeepLab family's own model options (besides `build_deeplabv3plus`'s).

    Args:
      l2_weight_decay: the reference's L2 regulariser on kernels (4e-5), added to the loss.
      eval_scales: scales of the multi-scale evaluation and SavedModel (paper: 0.5 0.75 1.0
        1.25 1.5 1.75).
      eval_flip: add left-right flipped predictions in evaluation and SavedModel.
    """
    return {"l2_weight_decay": l2_weight_decay, "eval_scales": eval_scales, "eval_flip": eval_flip}


# The model options and flags: build_deeplabv3plus's keyword arguments, then family_options'.
OPTIONS = ModelOptions("deeplab", build_deeplabv3plus, family_options)


def preprocess(images):
    """RGB [0, 255] -> [-1, 1] (research/deeplab `_preprocess_zero_mean_unit_range`)."""
    return preprocess_input(images, "xception65")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class CaffeFromUnitRange(keras.layers.Layer):
    """[-1, 1] RGB -> BGR minus the ImageNet mean (keras.applications.resnet input)."""

    def call(self, inputs):
        rgb = (tf.cast(inputs, tf.float32) + 1.0) * 127.5
        return tf.cast(rgb[..., ::-1] - tf.constant(IMAGENET_MEAN_BGR), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def split_options(model):
    """(build_deeplabv3plus kwargs, extra options) of config.model."""
    options, extra = OPTIONS.split(model)
    scales = extra["eval_scales"]
    if not scales or any(not s > 0 for s in scales):
        raise ConfigError(f"--eval-scales must be positive numbers; got {scales!r}")
    if extra["l2_weight_decay"] < 0:
        raise ConfigError(f"--l2-weight-decay must be >= 0; got {extra['l2_weight_decay']!r}")
    return options, extra


def no_imagenet_reason(backbone):
    """Why `backbone` has no ImageNet weights here, or None (`--weights auto` then means
    random initialisation, as Xception-65: keras.applications has no checkpoint of it)."""
    if backbone in IMAGENET_BACKBONES:
        return None
    return f"no ImageNet checkpoint for {backbone} in this package"


def add_l2_weight_decay(network, decay):
    """Attach the reference's L2 regulariser (decay * sum(w**2) / 2) to the kernels of
    the Conv2D layers (regular, pointwise and logits convolutions); returns their number."""
    regularizer = keras.regularizers.L2(decay / 2.0)
    count = 0
    for layer in all_layers(network):
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.regularizer = regularizer
            count += 1
    return count


def build(config, num_classes):
    options, extra = split_options(config.model)
    backbone = options.get("backbone", "xception65")
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    per_replica = config.batch_size // replicas
    statistics_batch = check_batch_norm_batch(
        per_replica, replicas, options.get("sync_batch_norm", False),
        options.get("freeze_batch_norm", False))
    network, note = build_with_weights(
        config.weights,
        lambda weights: build_deeplabv3plus(num_classes=num_classes, weights=weights, **options),
        no_imagenet_reason(backbone))
    if backbone.startswith("resnet"):
        image = keras.Input((None, None, 3), name="image")
        logits = network(CaffeFromUnitRange(name="caffe_input")(image))
        network = keras.Model(image, logits, name=network.name)
    notes = {"weights_used": note, "batch_norm_batch": statistics_batch,
             "eval_scales": list(extra["eval_scales"]), "eval_flip": bool(extra["eval_flip"])}
    if extra["l2_weight_decay"]:
        notes["l2_regularised_kernels"] = add_l2_weight_decay(network, extra["l2_weight_decay"])
    return network, notes


def make_predict_fn(task, config):
    """uint8 images [B, H, W, 3] -> probabilities [B, H, W, K] at the image's own size,
    averaged over `eval_scales` (and flips with `eval_flip`)."""
    _, extra = split_options(config.model)
    scales, flip = extra["eval_scales"], bool(extra["eval_flip"])
    network = task.network

    def predict(images):
        return predict_multiscale(network, task.preprocess(images), scales, flip)

    return predict


FAMILY = ModelFamily(
    name="deeplab", build=build, preprocess=preprocess, image_fill=(127.5, 127.5, 127.5),
    make_predict_fn=make_predict_fn, options=OPTIONS,
)


def main(argv=None):
    return cli.main(list(sys.argv[1:] if argv is None else argv), prog=PROG, description=__doc__,
                    presets=PRESETS, default_preset=DEFAULT_PRESET, family=FAMILY,
                    )


if __name__ == "__main__":
    sys.exit(main())
