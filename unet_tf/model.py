"""U-Net (Ronneberger, Fischer, Brox, MICCAI 2015) as a Keras functional model.

The default is the paper's network (Fig. 1) and the Keras code of seed 002 (the
Korean U-Net lecture notes, SOURCES.md): per level two unpadded 3x3 convolutions with ReLU, a 2x2
max-pooling with stride 2, channels 64-128-256-512-1024; on the way up a 2x2
up-convolution (`Conv2DTranspose`, stride 2) halving the channels and followed
by a ReLU, as in seed 002 and the authors' Caffe model (`relu_u3a`);
concatenation [up-convolved, centre-cropped skip] in seed 002's order (crops 4,
16, 40, 88 pixels per side at 572x572); two 3x3 convolutions with ReLU; a final
1x1 convolution to `num_classes` logits. 572x572x1 -> 388x388x2, 31,030,658
parameters (tests/test_unet_model.py). Weights start from the paper's Gaussian
with standard deviation sqrt(2/N), N the number of inputs of one neuron (He et
al.): Keras "he_normal" has that standard deviation but truncates at about two
of them, so an untruncated `VarianceScaling(2, "fan_in")` is used; for the 2x2
stride-2 up-convolution N is the input channels (one input pixel per output
pixel), half of what Keras counts as its fan-in, so its scale is 4. Biases start
at zero.

Layer names: `down{k}_conv1`, `down{k}_conv2`, `down{k}_pool` for the
contracting levels k = 1..depth (and `down{depth}_dropout`), `bottom_conv1`,
`bottom_conv2` (and `bottom_dropout`) for the deepest level, and `up{k}_upconv`,
`up{k}_crop`, `up{k}_concat`, `up{k}_conv1`, `up{k}_conv2` for the expanding
level that consumes the skip of `down{k}` (`up4` is the first up-convolution of
the depth-4 net), then `logits`.

Options beyond the paper: ``padding="same"`` (output size = input size; the
input is zero-padded at the bottom/right to a multiple of 2**depth and the
output cropped back, so any size works), ``batch_norm`` (convolution without
bias -> BatchNormalization -> ReLU), ``upsampling="resize_conv"`` (nearest 2x
resize then a 3x3 'same' convolution, Odena et al. 2016, against checkerboard
artifacts; its zero padding reaches one pixel past each map, so with
padding="valid" the network is no longer strictly valid and overlap-tile
stitching is exact only for "transpose").
"""

import keras

from segcore.errors import ConfigError, check_choice, check_positive_int
from segcore.layers import CropLike, PadToMultiple
from unet_tf.tiling import output_size

PADDINGS = ("valid", "same")
UPSAMPLINGS = ("transpose", "resize_conv")


def unet_encoder(x, base_filters=64, depth=4, padding="valid", batch_norm=False, dropout=0.0):
    """Contracting path of the U-Net on tensor `x`.

    Returns the feature taps by stride: ``{1: down1_conv2, 2: down2_conv2, ...,
    2**(depth-1): down{depth}_conv2, 2**depth: bottom_conv2}`` (after the
    dropout layers when `dropout` > 0), with
    ``base_filters * stride`` channels each. (With padding="valid" the "stride"
    is the pooling factor; the maps also lose 4 pixels per convolution pair.)
    """
    features = {}
    for level in range(1, depth + 1):
        stride = 2 ** (level - 1)
        x = _conv_pair(x, base_filters * stride, f"down{level}", padding, batch_norm)
        if dropout and level == depth:
            x = keras.layers.Dropout(dropout, name=f"down{level}_dropout")(x)
        features[stride] = x
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"down{level}_pool")(x)
    x = _conv_pair(x, base_filters * 2 ** depth, "bottom", padding, batch_norm)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bottom_dropout")(x)
    features[2 ** depth] = x
    return features


def build_unet(input_shape=(572, 572, 1), num_classes=2, base_filters=64, depth=4,
               padding="valid", batch_norm=False, dropout=0.0, upsampling="transpose",
               name=None):
    """Build a U-Net as a Keras functional model.

    Args:
      input_shape: (H, W, C); H and W may be None. With padding="valid" a static
        H or W must be a valid size (`unet_tf.valid_input_sizes`), else
        ConfigError names the nearest valid sizes.
      num_classes: number of output channels (logits), 2 in the paper.
      base_filters: channels of the first level (64); level k has
        base_filters * 2**(k-1).
      depth: number of max-poolings (4).
      padding: "valid" (the paper: output smaller than input, centred) or
        "same" (output as large as the input).
      batch_norm: BatchNormalization after every 3x3 convolution (not in the paper).
      dropout: "Drop-out layers at the end of the contracting path perform
        further implicit data augmentation" (paper, Sec. 3.1; no rate given).
        As in the authors' Caffe model (`dropout_d3c`, `dropout_d4c`, ratio
        0.5), two Dropout layers: `down{depth}_dropout` after the last
        pre-pooling level (it feeds both the pooling and the skip) and
        `bottom_dropout` after the deepest level. 0 (default) leaves them out;
        0.5 is the Caffe model's rate.
      upsampling: "transpose" (the paper's 2x2 up-convolution) or "resize_conv".
      name: model name, default "unet".
    Returns:
      keras.Model from images [B, H, W, C] to float32 logits
      [B, H', W', num_classes] (H' = `unet_tf.output_size(H, depth)` for "valid").
    """
    check_choice("padding", padding, PADDINGS)
    check_choice("upsampling", upsampling, UPSAMPLINGS)
    check_positive_int("num_classes", num_classes)
    check_positive_int("base_filters", base_filters)
    check_positive_int("depth", depth)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    if len(input_shape) != 3 or input_shape[-1] is None:
        raise ConfigError(
            f"input_shape must be (height, width, channels), got {tuple(input_shape)}"
        )
    if padding == "valid":
        for axis, size in zip(("height", "width"), input_shape[:2]):
            if size is not None:
                try:
                    output_size(size, depth)
                except ConfigError as error:
                    raise ConfigError(f"input_shape {axis}: {error}") from None

    image = keras.Input(input_shape, name="image")
    x = image
    if padding == "same":
        x = PadToMultiple(2 ** depth, name=f"pad_to_{2 ** depth}")(image)
    features = unet_encoder(x, base_filters, depth, padding, batch_norm, dropout)

    x = features[2 ** depth]
    for level in range(depth, 0, -1):
        filters = base_filters * 2 ** (level - 1)
        x = _upsample(x, filters, f"up{level}", upsampling)
        skip = CropLike("center", name=f"up{level}_crop")([features[2 ** (level - 1)], x])
        x = keras.layers.Concatenate(name=f"up{level}_concat")([x, skip])
        x = _conv_pair(x, filters, f"up{level}", padding, batch_norm)
    if padding == "same":
        x = CropLike(0, name="crop_to_input")([x, image])
    # float32 logits under a mixed-precision policy: softmax and loss stay float32.
    logits = keras.layers.Conv2D(
        num_classes, 1, kernel_initializer=_he(), dtype="float32", name="logits"
    )(x)
    return keras.Model(image, logits, name=name or "unet")


def _conv_pair(x, filters, prefix, padding, batch_norm):
    for i in (1, 2):
        if batch_norm:
            x = keras.layers.Conv2D(filters, 3, padding=padding, use_bias=False,
                                    kernel_initializer=_he(), name=f"{prefix}_conv{i}")(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn{i}")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
        else:
            x = keras.layers.Conv2D(filters, 3, padding=padding, activation="relu",
                                    kernel_initializer=_he(), name=f"{prefix}_conv{i}")(x)
    return x


def _upsample(x, filters, prefix, upsampling):
    if upsampling == "transpose":
        return keras.layers.Conv2DTranspose(
            filters, 2, strides=2, activation="relu",
            # Keras counts 4 * filters = 2 * in_channels inputs for this kernel; each
            # output pixel sees in_channels (the paper's N): twice the variance.
            kernel_initializer=_he(scale=4.0),
            name=f"{prefix}_upconv",
        )(x)
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}_resize")(x)
    return keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                               kernel_initializer=_he(), name=f"{prefix}_upconv")(x)


def _he(scale=2.0):
    """He et al.'s Gaussian N(0, scale / fan_in), untruncated as in the paper."""
    return keras.initializers.VarianceScaling(
        scale, mode="fan_in", distribution="untruncated_normal"
    )
