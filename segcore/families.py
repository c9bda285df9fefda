"""The model families by the name a run records in config.json (`TrainConfig.family`).

`get_family("deeplab")` is the `ModelFamily` of `deeplab_tf.train`; the trainer
modules are imported on first use (they import the engine, which imports this).
"""

import importlib

from segcore.errors import ConfigError

FAMILY_MODULES = {"fcn": "fcn_tf.train", "unet": "unet_tf.train", "deeplab": "deeplab_tf.train"}


def get_family(name):
    """The `ModelFamily` named `name` (ConfigError naming the known ones otherwise)."""
    if name not in FAMILY_MODULES:
        raise ConfigError(
            f"model family {name!r} unknown; expected one of {', '.join(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[name]).FAMILY
