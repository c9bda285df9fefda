"""FCN-32s/16s/8s on VGG16 (Long, Shelhamer, Darrell, CVPR 2015) in Keras 3."""

from fcn_tf.model import VARIANTS, build_fcn
from fcn_tf.preprocessing import preprocess

__all__ = ["VARIANTS", "build_fcn", "preprocess"]
