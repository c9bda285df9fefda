"""`--weights auto|imagenet|none|PATH`, the same for every family.

`build_with_weights(weights, build)` calls the family's `build(weights_argument)`:
None for "none", the path for a file, "imagenet" for "imagenet" and for "auto".
With "auto", ImageNet weights that can be neither found in the Keras cache nor
downloaded (the builder raises `WeightsUnavailable`) make the run start from random
initialisation with a loud warning, recorded in config.json; "imagenet" asked for
explicitly stays an error that says where to put the file.
"""

import logging
import socket

from segcore.errors import ConfigError

log = logging.getLogger("segcore.pretrained")
DOWNLOAD_TIMEOUT = 20.0  # seconds of silence before a weights download is given up


class WeightsUnavailable(ConfigError):
    """ImageNet weights are neither in the Keras cache nor downloadable."""


def build_with_weights(weights, build, no_imagenet=None):
    """(network, note for config.json) of `build(weights argument)`.

    no_imagenet: the reason the family has no ImageNet weights for this network (then
    "auto" means random initialisation; "imagenet" is left to the builder's error), or None.
    """
    if weights in (None, "none"):
        return build(None), "none (random initialisation)"
    if weights not in ("auto", "imagenet"):
        return build(weights), f"file {weights}"
    if no_imagenet and weights == "auto":
        return build(None), f"none (auto: {no_imagenet})"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        return build("imagenet"), f"imagenet ({weights})"
    except WeightsUnavailable as error:
        if weights == "imagenet":
            raise
        reason = str(error)
    finally:
        socket.setdefaulttimeout(previous)
    log.warning("=" * 72)
    log.warning("--weights auto: ImageNet weights unavailable: %s", reason)
    log.warning("TRAINING FROM SCRATCH (random initialisation); recorded in config.json")
    log.warning("=" * 72)
    return build(None), f"none (auto: ImageNet weights unavailable: {reason})"
