"""`python -m fcn_tf.train`: train FCN-32s/16s/8s (the project's main job).

With no arguments it trains FCN-8s on generated road scenes (no download) and
writes runs/synthetic_fcn8s/. The KITTI Road run of seeds 000/003 (SOURCES.md):

    python -m fcn_tf.train --preset kitti_fcn8s --data-dir data/data_road

`--help` lists every flag; `--list-presets` the presets and their target figures.
"""

import sys

from fcn_tf.model import build_fcn
from fcn_tf.preprocessing import preprocess
from fcn_tf.presets import DEFAULT_PRESET, PRESETS
from fcn_tf.vgg16 import VGG_MEAN_BGR
from segcore import cli
from segcore.options import ModelOptions
from segcore.pretrained import build_with_weights
from segcore.training import ModelFamily, train_and_evaluate  # noqa: F401 (public)

# The model options and flags (--variant, --dropout, ...) are build_fcn's keyword arguments.
OPTIONS = ModelOptions("fcn", build_fcn)


def build(config, num_classes):
    (options,) = OPTIONS.split(config.model)
    width = options.get("width", 1.0)
    network, note = build_with_weights(
        config.weights,
        lambda weights: build_fcn(num_classes=num_classes, weights=weights, **options),
        no_imagenet=(f"width {width}: ImageNet VGG16 weights fit width 1.0 only" if width != 1
                     else None))
    return network, {"weights_used": note}


FAMILY = ModelFamily(
    name="fcn", build=build, preprocess=preprocess,
    image_fill=tuple(reversed(VGG_MEAN_BGR)),  # mean RGB: zero after mean subtraction
    options=OPTIONS,
)


def main(argv=None):
    return cli.main(
        sys.argv[1:] if argv is None else argv, prog="python -m fcn_tf.train",
        description=__doc__, presets=PRESETS, default_preset=DEFAULT_PRESET,
        family=FAMILY,
    )


if __name__ == "__main__":
    sys.exit(main())
