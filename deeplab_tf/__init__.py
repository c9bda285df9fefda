"""DeepLabv3+ (Chen et al., ECCV 2018) in Keras 3: Xception-65, ResNet-50/101 and
MobileNetV2 encoders with atrous convolution, ASPP, the decoder, and multi-scale
inference."""

from deeplab_tf.aspp import ResizeBilinear
from deeplab_tf.inference import predict_labels, predict_multiscale, scale_dimension
from deeplab_tf.mobilenet import load_mobilenet_v2_weights, mobilenet_v2
from deeplab_tf.model import (
    ATROUS_RATES,
    BACKBONES,
    OUTPUT_STRIDES,
    batch_norm_batch,
    build_deeplabv3plus,
    check_batch_norm_batch,
    preprocess_input,
)
from deeplab_tf.resnet import copy_weights_by_name, load_resnet_weights, resnet50, resnet101
from deeplab_tf.xception import xception65

__all__ = [
    "ATROUS_RATES",
    "BACKBONES",
    "OUTPUT_STRIDES",
    "ResizeBilinear",
    "batch_norm_batch",
    "build_deeplabv3plus",
    "check_batch_norm_batch",
    "copy_weights_by_name",
    "load_mobilenet_v2_weights",
    "load_resnet_weights",
    "mobilenet_v2",
    "predict_labels",
    "predict_multiscale",
    "preprocess_input",
    "resnet101",
    "resnet50",
    "scale_dimension",
    "xception65",
]
