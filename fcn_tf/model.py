"""FCN-32s / FCN-16s / FCN-8s on VGG16 (Long, Shelhamer, Darrell, CVPR 2015).

Layer names are those of the reference Caffe nets (shelhamer/fcn.berkeleyvision.org,
`voc-fcn8s/net.py`): `fc6`, `fc7`, `score_fr`, `upscore2`, `score_pool4`,
`fuse_pool4`, `upscore_pool4`, `score_pool3`, `fuse_pool3`, `upscore8` and the
final crop `score`.

Input size. Any H x W gives logits of exactly H x W, aligned with the input:

* ``geometry="aligned"`` (default): the input is zero-padded at the bottom/right
  to a multiple of 32 (zero after mean subtraction is the mean colour), every
  convolution uses 'same' padding, and each transposed convolution of kernel 2f,
  stride f, crops f/2 pixels per side ('same'). Pixel i of a stride-s map is
  centred on input pixel s*i + (s-1)/2 and the bilinear kernel (centre f - 0.5)
  puts it there again, so the upsampled scores are aligned; the top-left H x W
  window is the output. Cost: the input padded to a multiple of 32, nothing more.
* ``geometry="caffe"``: the reference geometry, for exact reproduction: `conv1_1`
  pads by 100, `fc6` is a 'valid' 7x7 convolution, transposed convolutions are
  uncropped and the crops use the reference offsets (5 and 9 for the skips; 31,
  27, 19 for the final crop of 8s, 16s, 32s). It computes on a (H+198) x (W+198)
  first layer, about 3x the work of "aligned" at 160x576.

Parameter count, 21 classes, FCN-8s (checked in tests/test_fcn_model.py): the
reference's 134,362,751 parameters outside the bilinear deconvolutions (VGG16
convolutions 14,714,688; fc6 102,760,448 + 4,096; fc7 16,777,216 + 4,096; score_fr
86,037; score_pool4 10,773; score_pool3 5,397) plus 127,008 in the three
deconvolutions (`upscore2` 7,056, `upscore_pool4` 7,056, `upscore8` 112,896; no
biases, as the reference). With ``learn_upsampling="none"`` (the reference repo)
that is 134,362,751 trainable + 127,008 fixed, exactly the reference net's; by
default (the paper learns the 2x deconvolutions) 134,376,863 trainable + 112,896
fixed. FCN-16s: 134,357,354 + 7,056 (`upscore2`) + 451,584 (`upscore16`); FCN-32s: 134,346,581 +
1,806,336 (`upscore32`).
"""

import keras

from fcn_tf.vgg16 import load_vgg16_weights, vgg16_encoder, vgg16_weights_file
from segcore.errors import ConfigError, check_choice
from segcore.layers import CropLike, PadToMultiple
from segcore.upsampling import BilinearTransposeInitializer, ResizeConv2D

VARIANTS = ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce")
GEOMETRIES = ("aligned", "caffe")
UPSAMPLINGS = ("transpose", "resize_conv")
LEARN_UPSAMPLING = ("skips", "all", "none")

# Final crop offsets of the reference nets (geometry "caffe").
CAFFE_SCORE_OFFSET = {"fcn32s": 19, "fcn16s": 27, "fcn8s": 31, "fcn8s_atonce": 31}


def build_fcn(variant="fcn8s", num_classes=21, input_shape=(None, None, 3), weights=None,
              dropout=0.5, learn_upsampling="skips", upsampling="transpose",
              geometry="aligned", width=1.0, name=None):
    """Build an FCN as a Keras functional model.

    Args:
      variant: "fcn32s", "fcn16s", "fcn8s", or "fcn8s_atonce" (FCN-8s trained in
        one stage: pool4 scaled by 0.01 and pool3 by 0.0001 before their score
        convolutions, as `voc-fcn8s-atonce`).
      num_classes: number of output classes.
      input_shape: (H, W, 3); H and W may be None. Inputs are VGG-preprocessed
        images (see `fcn_tf.preprocess`).
      weights: None (random init), "imagenet" (Keras cache or download), or the
        path of a Keras VGG16 include_top weights file.
      dropout: rate of `drop6` and `drop7` (keep_prob 0.5 of the KITTI blog posts, seeds 000/003
        in SOURCES.md, is rate 0.5).
      learn_upsampling: which bilinear-initialised deconvolutions are trained:
        "skips" (the paper: the 2x ones; the final one fixed), "all", "none"
        (the reference repo).
      upsampling: "transpose" (bilinear-initialised transposed convolutions) or
        "resize_conv" (bilinear resize then a 3x3 convolution started as the
        identity, against checkerboard artifacts; geometry "aligned" only).
      geometry: "aligned" or "caffe" (module docstring).
      width: multiplier of every VGG16 channel count (64 ... 512, fc6/fc7 4096); 1.0 is
        the paper's VGG16 and the only width ImageNet weights fit. Narrower networks
        (e.g. 0.125: 8 ... 64 channels, fc 512) train the same graph in a fraction of
        the time, for tests and quick looks.
    Returns:
      keras.Model from images to float32 logits [batch, H, W, num_classes].
    """
    check_choice("variant", variant, VARIANTS)
    check_choice("geometry", geometry, GEOMETRIES)
    check_choice("upsampling", upsampling, UPSAMPLINGS)
    check_choice("learn_upsampling", learn_upsampling, LEARN_UPSAMPLING)
    if upsampling == "resize_conv" and geometry != "aligned":
        raise ConfigError("upsampling='resize_conv' needs geometry='aligned'")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 1:
        raise ConfigError(f"width must be a number in (0, 1], got {width!r}")
    if weights is not None and width != 1:
        raise ConfigError(f"weights={weights!r}: VGG16 weights fit width 1.0 only, got "
                          f"width {width}")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ConfigError(f"input_shape must be (height, width, 3), got {tuple(input_shape)}")
    # The weights file is found (or fetched) before the network is built.
    path = vgg16_weights_file(weights) if weights is not None else None

    def upsample(x, factor, layer_name, final):
        trainable = learn_upsampling == "all" or (learn_upsampling == "skips" and not final)
        if upsampling == "resize_conv":
            return ResizeConv2D(num_classes, factor, name=layer_name, trainable=trainable)(x)
        return keras.layers.Conv2DTranspose(
            num_classes, 2 * factor, strides=factor,
            padding="same" if geometry == "aligned" else "valid", use_bias=False,
            kernel_initializer=BilinearTransposeInitializer(), trainable=trainable,
            name=layer_name,
        )(x)

    def score(x, layer_name):
        return keras.layers.Conv2D(
            num_classes, 1, kernel_initializer="zeros", name=layer_name
        )(x)

    def skip(x, layer_name, offset):
        return x if geometry == "aligned" else CropLike(offset, name=layer_name)(x)

    image = keras.Input(input_shape, name="image")
    x = PadToMultiple(32, name="pad_to_32")(image) if geometry == "aligned" else image
    features = vgg16_encoder(x, geometry=geometry, dropout=dropout, width=width)
    atonce = variant == "fcn8s_atonce"

    score_fr = score(features[32], "score_fr")
    if variant == "fcn32s":
        upscore = upsample(score_fr, 32, "upscore32", final=True)
    else:
        upscore2 = upsample(score_fr, 2, "upscore2", final=False)
        pool4 = features[16]
        if atonce:
            pool4 = keras.layers.Rescaling(0.01, name="scale_pool4")(pool4)
        score_pool4 = score(pool4, "score_pool4")
        if geometry == "caffe":
            score_pool4 = CropLike(5, name="score_pool4c")([score_pool4, upscore2])
        fuse_pool4 = keras.layers.Add(name="fuse_pool4")([upscore2, score_pool4])
        if variant == "fcn16s":
            upscore = upsample(fuse_pool4, 16, "upscore16", final=True)
        else:
            upscore_pool4 = upsample(fuse_pool4, 2, "upscore_pool4", final=False)
            pool3 = features[8]
            if atonce:
                pool3 = keras.layers.Rescaling(0.0001, name="scale_pool3")(pool3)
            score_pool3 = score(pool3, "score_pool3")
            if geometry == "caffe":
                score_pool3 = CropLike(9, name="score_pool3c")([score_pool3, upscore_pool4])
            fuse_pool3 = keras.layers.Add(name="fuse_pool3")([upscore_pool4, score_pool3])
            upscore = upsample(fuse_pool3, 8, "upscore8", final=True)

    offset = CAFFE_SCORE_OFFSET[variant] if geometry == "caffe" else 0
    # float32 logits under mixed precision: softmax, loss and metrics stay float32.
    logits = CropLike(offset, name="score", dtype="float32")([upscore, image])
    model = keras.Model(image, logits, name=name or variant)

    if path is not None:
        load_vgg16_weights(model, path)
    return model
