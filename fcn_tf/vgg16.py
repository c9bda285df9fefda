"""The VGG16 encoder of FCN, with fc6/fc7 as convolutions.

Layer names follow the FCN reference (`conv1_1` ... `conv5_3`, `pool1` ...
`pool5`, `fc6`, `drop6`, `fc7`, `drop7`). The encoder returns its features by
stride, the one feature-tap contract of this package: ``{8: pool3, 16: pool4,
32: drop7}`` (`layer3_out`, `layer4_out`, `layer7_out` of the KITTI blog posts' `load_vgg`, seeds
000/003 in SOURCES.md).

ImageNet weights come from `keras.applications.VGG16(include_top=True)`: the
convolutions are copied, and the classifier's Dense `fc1` (25088 -> 4096) and
`fc2` (4096 -> 4096) become the 7x7 convolution `fc6` and the 1x1 convolution
`fc7` by a reshape ("fully connected layers as convolutions", FCN section 3.1).
Keras flattens `pool5` (7, 7, 512) in row-major (h, w, c) order, so
``fc1.kernel.reshape(7, 7, 512, 4096)`` is exactly the convolution kernel.
"""

import logging
import os

import keras

from segcore.errors import ConfigError
from segcore.imagenet import IMAGENET_MEAN_BGR
from segcore.layers import PatchConv2D
from segcore.pretrained import WeightsUnavailable

log = logging.getLogger(__name__)

# (block, number of 3x3 convolutions, channels): VGG16, configuration D.
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
FC_CHANNELS = 4096  # fc6 and fc7

IMAGENET_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
)
IMAGENET_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
IMAGENET_WEIGHTS_MD5 = "64373286793e3c8b2b4e3219cbf3544b"

# Caffe-style preprocessing of the Keras VGG16 weights: BGR order, mean subtracted.
VGG_MEAN_BGR = IMAGENET_MEAN_BGR


def vgg16_encoder(x, geometry="aligned", dropout=0.5, width=1.0):
    """Apply the VGG16 encoder to tensor `x`; return ``{stride: tensor}``.

    `width` scales every layer's channels (64 ... 512 and fc6/fc7's 4096; at least 1
    each): 1.0 is VGG16, the only width ImageNet weights fit.

    geometry "aligned": 3x3 convolutions and the 7x7 `fc6` use 'same' padding;
    the caller pads the input to a multiple of 32, so pool3/pool4/fc7 are
    exactly 1/8, 1/16, 1/32 of it and pixel i of a stride-s map is centred on
    input pixel s*i + (s-1)/2.
    geometry "caffe": the reference network: `conv1_1` sees the input zero-padded
    by 100 pixels, `fc6` is a 'valid' 7x7 convolution, pooling rounds up (Caffe's
    ceil mode, which 'same' 2x2/2 pooling reproduces).
    """
    features = {}
    for block, repeats, vgg_channels in VGG16_BLOCKS:
        channels = scaled_channels(vgg_channels, width)
        for i in range(1, repeats + 1):
            if geometry == "caffe" and block == 1 and i == 1:
                x = keras.layers.ZeroPadding2D(100, name="pad100")(x)
                padding = "valid"
            else:
                padding = "same"
            x = keras.layers.Conv2D(
                channels, 3, padding=padding, activation="relu", name=f"conv{block}_{i}"
            )(x)
        x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{block}")(x)
        features[2 ** block] = x
    fc6_padding = "valid" if geometry == "caffe" else "same"
    # fc6 as im2col + GEMM: same weights and results as Conv2D, far faster gradient.
    x = PatchConv2D(scaled_channels(FC_CHANNELS, width), 7, padding=fc6_padding,
                    activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = keras.layers.Conv2D(scaled_channels(FC_CHANNELS, width), 1, activation="relu",
                            name="fc7")(x)
    x = keras.layers.Dropout(dropout, name="drop7")(x)
    features[32] = x
    return {8: features[8], 16: features[16], 32: features[32]}


def scaled_channels(channels, width):
    """VGG16's `channels` times `width`, rounded, at least 1."""
    return max(1, round(channels * width))


def resolve_imagenet_weights(origin=IMAGENET_WEIGHTS_URL, file_hash=IMAGENET_WEIGHTS_MD5,
                             cache_dir=None, download=True):
    """Path of the Keras ImageNet VGG16 (include_top) weights file.

    Looks in the Keras cache (``~/.keras/models`` or `cache_dir`/models) and,
    if `download`, fetches `origin` there (checked against `file_hash`).
    Raises WeightsUnavailable (a ConfigError) saying how to provide the file when it cannot be had.
    """
    cache_root = cache_dir or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    cached = os.path.join(cache_root, "models", IMAGENET_WEIGHTS_FILE)
    if os.path.isfile(cached):
        return cached
    if not download:
        raise WeightsUnavailable(
            f"ImageNet VGG16 weights are not in the Keras cache ({cached}); "
            f"download {IMAGENET_WEIGHTS_URL} there or pass --weights PATH"
        )
    # get_file silently falls back to /tmp/.keras when the cache directory does not
    # exist yet; create it so the file lands where the next run will look.
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    try:
        return keras.utils.get_file(
            IMAGENET_WEIGHTS_FILE, origin, file_hash=file_hash,
            cache_subdir="models", cache_dir=cache_root,
        )
    except Exception as error:  # network down, refused, bad hash: say what to do
        if os.path.exists(cached):
            os.remove(cached)  # get_file keeps a file that failed its checksum
        raise WeightsUnavailable(
            f"could not download the ImageNet VGG16 weights from {origin} ({error}); "
            f"put {IMAGENET_WEIGHTS_FILE} in {os.path.dirname(cached)} or pass "
            "--weights PATH to a Keras VGG16 (include_top=True) weights file"
        ) from None


def vgg16_weights_file(weights):
    """The file of `weights` ("imagenet": the Keras cache or a download; else a path),
    checked to exist (a ConfigError naming it otherwise)."""
    path = resolve_imagenet_weights() if weights == "imagenet" else weights
    if not os.path.isfile(path):
        raise ConfigError(f"--weights: no VGG16 weights file at {path}")
    return path


def load_vgg16_weights(model, path):
    """Copy the VGG16 (include_top=True) weights file at `path` into `model`.

    `path` is a Keras VGG16 weights file: the ImageNet file Keras caches or one
    written by `save_weights` of `keras.applications.VGG16(include_top=True)`.
    """
    vgg16_weights_file(path)
    try:
        vgg = keras.applications.VGG16(include_top=True, weights=path)
    except Exception as error:
        raise ConfigError(
            f"--weights {path}: not a Keras VGG16 (include_top=True) weights file ({error})"
        ) from None
    copy_vgg16_weights(vgg, model)


def copy_vgg16_weights(vgg, model):
    """Copy a Keras VGG16 classifier `vgg` into the FCN encoder of `model`."""
    for block, repeats, _ in VGG16_BLOCKS:
        for i in range(1, repeats + 1):
            source = vgg.get_layer(f"block{block}_conv{i}")
            model.get_layer(f"conv{block}_{i}").set_weights(source.get_weights())
    fc1_kernel, fc1_bias = vgg.get_layer("fc1").get_weights()
    fc2_kernel, fc2_bias = vgg.get_layer("fc2").get_weights()
    model.get_layer("fc6").set_weights([fc1_kernel.reshape(7, 7, 512, 4096), fc1_bias])
    model.get_layer("fc7").set_weights([fc2_kernel.reshape(1, 1, 4096, 4096), fc2_bias])
