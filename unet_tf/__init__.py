"""U-Net (Ronneberger, Fischer, Brox, MICCAI 2015) in Keras 3: the network, the
overlap-tile arithmetic and prediction and the border weight map. The ISBI 2012
challenge metrics are the dataset's, in `segcore.isbi_metrics`."""

from unet_tf.model import PADDINGS, UPSAMPLINGS, build_unet, unet_encoder
from unet_tf.tiling import (
    border,
    input_size_for_output,
    is_valid_input_size,
    minimum_input_size,
    mirror_pad,
    output_size,
    predict_dihedral,
    predict_tiled,
    predict_tiled_batch,
    tile_layout,
    tile_step,
    valid_input_sizes,
)
from unet_tf.weight_map import border_weight_map, isbi_weight_map

__all__ = [
    "PADDINGS",
    "UPSAMPLINGS",
    "border",
    "border_weight_map",
    "build_unet",
    "input_size_for_output",
    "is_valid_input_size",
    "isbi_weight_map",
    "minimum_input_size",
    "mirror_pad",
    "output_size",
    "predict_dihedral",
    "predict_tiled",
    "predict_tiled_batch",
    "tile_layout",
    "tile_step",
    "unet_encoder",
    "valid_input_sizes",
]
