"""`python -m fcn_tf.train`: train FCN-32s/16s/8s (the project's main job).

With no arguments it trains FCN-8s on generated road scenes (no download) and
writes runs/synthetic_fcn8s/. The seeds' KITTI run:

    python -m fcn_tf.train --preset kitti_fcn8s --data-dir data/data_road

`--help` lists every flag; `--list-presets` the presets and their target figures.
"""

import logging
import socket
import sys

from segcore import cli
from segcore.errors import ConfigError
from segcore.training import ModelFamily, train_and_evaluate  # noqa: F401 (public)

from fcn_tf.model import build_fcn
from fcn_tf.presets import DEFAULT_PRESET, PRESETS
from fcn_tf.preprocessing import preprocess
from fcn_tf.vgg16 import VGG_MEAN_BGR, resolve_imagenet_weights

log = logging.getLogger("fcn_tf.train")

MODEL_FLAGS = {
    "--variant": ("variant", str, "fcn32s, fcn16s, fcn8s or fcn8s_atonce"),
    "--dropout": ("dropout", float, "dropout rate of drop6/drop7 (keep_prob 0.5 -> 0.5)"),
    "--num-classes": ("num_classes", int, "must match the dataset (checked)"),
    "--upsampling": ("upsampling", str, "transpose (bilinear-initialised) or resize_conv"),
    "--learn-upsampling": ("learn_upsampling", str, "skips (paper), all, or none (reference repo)"),
    "--geometry": ("geometry", str, "aligned (pad to 32) or caffe (reference pad-100 + crops)"),
}


def resolve_weights(weights, download_timeout=20.0):
    """(value for build_fcn, note for config.json) of --weights auto|imagenet|none|PATH."""
    if weights in (None, "none"):
        return None, "none (random initialisation)"
    if weights == "auto":
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(download_timeout)
        try:
            path = resolve_imagenet_weights()
        except ConfigError as error:
            log.warning("=" * 72)
            log.warning("--weights auto: ImageNet VGG16 weights unavailable: %s", error)
            log.warning("TRAINING FROM SCRATCH (random initialisation); recorded in config.json")
            log.warning("=" * 72)
            return None, f"none (auto: ImageNet weights unavailable: {error})"
        finally:
            socket.setdefaulttimeout(previous)
        return path, f"imagenet ({path})"
    if weights == "imagenet":
        return resolve_imagenet_weights(), "imagenet"
    return weights, f"file {weights}"


def build(config, num_classes):
    weights, note = resolve_weights(config.weights)
    options = {k: v for k, v in config.model.items() if k != "num_classes"}
    network = build_fcn(num_classes=num_classes, weights=weights, **options)
    return network, {"weights_used": note}


FAMILY = ModelFamily(
    name="fcn", build=build, preprocess=preprocess,
    image_fill=tuple(reversed(VGG_MEAN_BGR)),  # mean RGB: zero after mean subtraction
)


def main(argv=None):
    return cli.main(
        sys.argv[1:] if argv is None else argv, prog="python -m fcn_tf.train",
        description=__doc__, presets=PRESETS, default_preset=DEFAULT_PRESET,
        family=FAMILY, model_flags=MODEL_FLAGS,
    )


if __name__ == "__main__":
    sys.exit(main())
