"""Named U-Net experiments, each stating the figure it aims at.

`python -m unet_tf.train --preset NAME` runs one; flags override its fields.
With `--data-dir` and no `--preset`, `isbi_unet` (the paper) is used.

The paper's ISBI 2012 figures (Ronneberger et al. 2015, Table 1) are on the
challenge's 30 test slices, whose labels are hidden, scored by the organisers:
warping error 0.000353, Rand error 0.0382, pixel error 0.0611. The runs here
score slices 20-23 of the training volume (split "val"), so they are a proxy.

Model fields (see `unet_tf.train`): the `build_unet` options, plus
``train_tile`` (None/0: each training image is one mirrored tile; an int: the
paper's overlap tiles of that input size, all in one step), ``tile_size``
(input tile of the overlap-tile evaluation and of the SavedModel) and
``tiles_per_pass`` (tiles per forward pass at evaluation).
"""

from segcore.augment import AugmentConfig  # noqa: F401  (fields documented there)
from segcore.training import TrainConfig

_PAPER_TARGET = ("ISBI 2012 test, full-width U-Net (paper Table 1, hidden labels): warping error "
                 "0.000353, Rand error 0.0382, pixel error 0.0611; this run reports pixel error, "
                 "foreground IoU, Rand and warping error on slices 20-23")

# The paper's training (Sec. 3 and 3.1): batch 1, SGD momentum 0.99, the weighted
# loss of Eq. 2 (w0 = 10, sigma = 5 px), elastic deformations on a 3x3 grid with
# 10 px standard deviation, drop-out at the end of the contracting path. The
# learning rate and the number of iterations are not in the paper ("training
# takes 10 hours" on a 6 GB Titan): 0.01 on the per-pixel mean loss and 100
# epochs (2,000 steps on slices 0-19) are this package's choices.
_ISBI = dict(
    dataset="isbi2012", data_dir="data/isbi2012", train_split="train", val_split="val",
    image_size=None, batch_size=1, optimizer="sgd", learning_rate=0.01, momentum=0.99,
    weight_map={"w0": 10.0, "sigma": 5.0},
    augment={"flip": True, "elastic_sigma": 10.0},
    weights=None, overlays=4,
)

PRESETS = {
    # The embedded default: generated EM-like slices, no download, a few minutes on 2 CPU cores.
    "synthetic_unet": TrainConfig(
        name="synthetic_unet", family="unet",
        target="generated ISBI-like slices (segcore.data.synthetic_membranes); README reports the "
               "measured val membrane IoU and ISBI metrics (goal: pixel error < 0.08)",
        model={"base_filters": 8, "depth": 4, "tile_size": 380},
        dataset="synthetic_membranes", dataset_options={"count": 32},
        image_size=(160, 160), epochs=10, batch_size=2, optimizer="adam", learning_rate=1e-3,
        weight_map={"w0": 10.0, "sigma": 5.0}, augment={"flip": True, "elastic_sigma": 6.0},
        validation_steps=4, eval_max_images=16, weights=None, overlays=4,
    ),
    # Seconds: for tests and a first look at the run directory.
    "smoke": TrainConfig(
        name="smoke", family="unet",
        target="pipeline check only: 2 steps on 4 generated slices",
        model={"base_filters": 4, "depth": 2, "tile_size": 68},
        dataset="synthetic_membranes", dataset_options={"count": 4},
        image_size=(48, 48), epochs=1, batch_size=2, steps_per_epoch=2, optimizer="adam",
        learning_rate=1e-3, weight_map={"w0": 10.0, "sigma": 5.0},
        augment={"flip": True, "elastic_sigma": 4.0}, eval_max_images=2, overlays=2, weights=None,
    ),
    # The paper: full-width U-Net (64-1024 channels), input tile 572 at evaluation.
    "isbi_unet": TrainConfig(
        name="isbi_unet", family="unet", target=_PAPER_TARGET,
        model={"base_filters": 64, "depth": 4, "dropout": 0.5, "train_tile": None,
               "tile_size": 572},
        epochs=100, **_ISBI,
    ),
    # Width-reduced (16-256 channels, 1/16 of the paper's FLOPs) for the CPU benchmark
    # (benchmarks/bench_unet_isbi.py).
    "isbi_unet_small": TrainConfig(
        name="isbi_unet_small", family="unet",
        target="CPU proxy of isbi_unet (base_filters 16): " + _PAPER_TARGET,
        model={"base_filters": 16, "depth": 4, "dropout": 0.5, "train_tile": None,
               "tile_size": 572},
        epochs=40, **_ISBI,
    ),
}

# The CPU budgets: the paper's network and loss, trained for an hour (and a 16-channel
# one for 15 minutes) of a 2-core CPU in float32 instead of 10 GPU hours. Measured on
# isbi_unet_small for 600 steps, one choice changed at a time (benchmarks/README.md,
# "U-Net on ISBI within a CPU budget"), slices 20-23 pixel error / Rand error (best
# threshold):
#   * optimiser: the paper's SGD momentum 0.99 does not get off the constant predictor
#     in that many steps (0.207 / 0.443 at lr 1e-3 on the mean loss); Adam does (lr 2e-4
#     0.098, 5e-4 0.088, 1e-3 0.095 with a noisy curve); a poly decay to 0 steadies the
#     end (1e-3 poly: 0.088 / 0.224);
#   * the weight map: the border term w0 = 10, sigma = 5 of Eq. 2 is kept (without it
#     Rand is 0.340: touching cells merge); its class-balancing term w_c is dropped
#     (class_weights 1, 1: 0.082 / 0.160), as it weighs membrane pixels ~3.6x and
#     pushes the 0.5 threshold into the cells in a short run;
#   * elastic deformation sigma 10 as the paper (5 px: 0.087, no better);
#   * whole mirrored slices per step (a 700 px input for the 512 px output: 53 % of
#     the input's pixels are labelled, more than the paper's 572 tiles' 46 %).
# Drop-out 0.5 (the paper's network; the 16-channel one below has none) and the paper's
# evaluation, averaged over rotated versions of the input (eval_rotations 8), as the paper.
_BUDGET = dict(
    dataset="isbi2012", data_dir="data/isbi2012", train_split="train", val_split="val",
    image_size=None, batch_size=1, optimizer="adam", schedule="poly",
    weight_map={"w0": 10.0, "sigma": 5.0, "class_weights": (1.0, 1.0)},
    augment={"flip": True, "elastic_sigma": 10.0},
    weights=None, overlays=4,
)
PRESETS.update({
    # 360 steps: one hour of model.fit (~8.5 s per whole-slice step of the full-width
    # network in float32, and ~1 min of validation per epoch, on a 2-core AMD EPYC
    # without AMX).
    "isbi_unet_1h": TrainConfig(
        name="isbi_unet_1h", family="unet",
        target="ISBI 2012 slices 20-23 after training on 0-19 for 1 h of a 2-core CPU (fp32), "
               "the paper's network: pixel error <= 0.07, Rand error (best threshold) <= 0.15 "
               "(paper, 10 GPU hours, test slices: 0.0611 / 0.0382)",
        model={"base_filters": 64, "depth": 4, "dropout": 0.5, "train_tile": None,
               "tile_size": 572, "eval_rotations": 8},
        epochs=9, steps_per_epoch=40, learning_rate=5e-4, **_BUDGET,
    ),
    # 1,100 steps: 15 minutes at ~0.75 s per step of the 16-channel network (1/16 of
    # the paper's multiply-adds) on the same CPU. A narrower variant in a second way: no
    # drop-out. The 16-channel network underfits in 1,100 steps (its training pixel
    # accuracy, 0.904, stays below the validation's, 0.915, with drop-out 0.5), and
    # drop-out slows it further: slices 20-23 pixel error / Rand (best threshold) 0.080 /
    # 0.102 without it, 0.083 / 0.127 with it. Random 228-pixel crops (412-pixel inputs,
    # 2,750 steps in the same time, drop-out 0.5) reach 0.082 / 0.166: no better than
    # whole slices.
    "isbi_unet_small_15min": TrainConfig(
        name="isbi_unet_small_15min", family="unet",
        target="ISBI 2012 slices 20-23 after training on 0-19 for 15 min of a 2-core CPU "
               "(fp32), U-Net with 16 base channels and no drop-out: pixel error <= 0.08",
        model={"base_filters": 16, "depth": 4, "dropout": 0.0, "train_tile": None,
               "tile_size": 572, "eval_rotations": 8},
        epochs=11, steps_per_epoch=100, learning_rate=1e-3, **_BUDGET,
    ),
})

DEFAULT_PRESET = "synthetic_unet"
ISBI_PRESET = "isbi_unet"
