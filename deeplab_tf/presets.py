"""Named DeepLabv3+ experiments, each stating the figure it aims at.

`python -m deeplab_tf.train --preset NAME` runs one; flags override its fields.

Published figures (DeepLabv3+, Chen et al., ECCV 2018, and the reference's
model zoo, research/deeplab/g3doc/model_zoo.md), all Xception-65 with the decoder:

* VOC 2012 val 84.56 % mIoU: the paper's best val figure, Xception pretrained
  on ImageNet *and* JFT-300M, then MS-COCO, trained on train_aug, evaluated at
  OS8 with scales 0.5-1.75 and flips (Table 5). Test: 87.8 % (COCO-pretrained),
  89.0 % (COCO + JFT) (Table 6, abstract).
* Model zoo, `xception_coco_voc_trainaug` (ImageNet + COCO, train_aug): 82.20 %
  val at OS16, single scale; 83.58 % at OS8, scales 0.5:0.25:1.75, flip.
* ImageNet-only VOC figures are not in the model zoo; the paper's Table 5 lists
  them (not checked here).
* Cityscapes (model zoo, `xception_cityscapes_trainfine`, ImageNet only, train_fine):
  78.79 % val at OS16 single scale, 80.42 % at OS8 with scales 0.75:0.25:1.25 and
  flip. The paper's 82.1 % (abstract, Table 7) is on the Cityscapes *test*
  server, not comparable with a val figure.

Model zoo models (research/deeplab/g3doc/model_zoo.md, ImageNet + MS-COCO +
VOC 2012 train_aug, "PASCAL mIOU" on VOC 2012 val):

* `mobilenetv2_dm05_coco_voc_trainaug`: DeepLabv3, MobileNetV2 depth multiplier
  0.5, no atrous ASPP branches, no decoder: 70.19 % at OS16, scale 1.0, no flip.
* `mobilenetv2_coco_voc_trainaug`: the same at depth multiplier 1.0: 75.32 % at
  OS16 single scale, 77.33 % at OS8 with scales 0.5:0.25:1.75 and flip.
* `xception65_coco_voc_trainaug`: DeepLabv3+ (ASPP 6/12/18, decoder at OS4):
  82.20 % at OS16 single scale, 83.58 % at OS8, scales 0.5:0.25:1.75, flip.

The three presets of these names build those networks (the options of
`build_deeplabv3plus`) with the paper's VOC recipe; training them here starts
from ImageNet (MobileNetV2 1.0, keras.applications) or random weights, not from
the authors' COCO models, so the figures are targets. The published models
themselves run in this package through `python -m deeplab_tf.convert` (their
TFLite file, checkpoint or frozen graph -> a run directory of the same options).

This package has no ImageNet Xception-65 checkpoint (keras.applications has
none, and the TF-slim checkpoints are not converted here): the Xception presets
start from random weights (or `--init-from RUN_DIR`), so the figures above are
targets of the recipe, not of a from-scratch run.

Model fields (see `deeplab_tf.train`): the `build_deeplabv3plus` options, plus
``l2_weight_decay`` (the reference's L2 regulariser, 4e-5), ``eval_scales`` and
``eval_flip`` (multi-scale and flipped inference of evaluation and SavedModel).
"""

from segcore.augment import AugmentConfig  # noqa: F401  (fields documented there)
from segcore.training import TrainConfig

_XCEPTION_OS16 = {"backbone": "xception65", "output_stride": 16, "separable": True,
                  "sync_batch_norm": True, "l2_weight_decay": 4e-5}
_PAPER_AUGMENT = {"scale": (0.5, 2.0), "flip": True}

PRESETS = {
    # The embedded default: generated shape scenes, no download, a few minutes on 2 CPU cores.
    # Batch-norm momentum 0.9: the reference's 0.997/0.9997 moving averages still hold
    # ~95 % of their initial values after this run's 160 steps (evaluation would then
    # see untrained statistics and predict one class).
    "synthetic_deeplab": TrainConfig(
        name="synthetic_deeplab", family="deeplab",
        target="generated shape scenes (segcore.data.synthetic_shapes, 4 classes); README reports "
               "the measured val mean IoU (goal >= 0.6)",
        model={"backbone": "mobilenetv2", "alpha": 0.35, "output_stride": 16,
               "batch_norm_momentum": 0.9, "l2_weight_decay": 4e-5},
        dataset="synthetic_shapes", dataset_options={"count": 160},
        image_size=(97, 97), epochs=8, batch_size=8, optimizer="adam", learning_rate=2e-3,
        schedule="poly", augment={"scale": (0.75, 1.25), "flip": True}, weights=None,
        validation_steps=5, eval_max_images=40, overlays=4,
    ),
    # Seconds: for tests and a first look at the run directory.
    "smoke": TrainConfig(
        name="smoke", family="deeplab",
        target="pipeline check only: 2 steps on 4 generated scenes",
        model={"backbone": "mobilenetv2", "alpha": 0.35, "output_stride": 16,
               "batch_norm_momentum": 0.9},
        dataset="synthetic_shapes", dataset_options={"count": 4},
        image_size=(49, 49), epochs=1, batch_size=2, steps_per_epoch=2, optimizer="sgd",
        learning_rate=0.007, schedule="poly", augment=dict(_PAPER_AUGMENT),
        eval_max_images=2, overlays=2, weights=None,
    ),
    # The paper's VOC recipe (DeepLabv3 Sec. 4.1 / DeepLabv3+ Sec. 4): train_aug,
    # 513x513 crops of images randomly scaled by 0.5-2.0 and flipped, batch 16,
    # poly learning rate 0.007 (power 0.9), SGD momentum 0.9, L2 weight decay 4e-5,
    # batch norm trained (synchronised over replicas), OS16, ~30K iterations
    # (45 epochs of 661 batches = 29,745 steps).
    "voc_xception65_os16": TrainConfig(
        name="voc_xception65_os16", family="deeplab",
        target="VOC 2012 val, OS16 single scale: 82.20 % (model zoo, ImageNet+COCO init); "
               "paper's best 84.56 % val (ImageNet+JFT+COCO, OS8 eval, MS+flip), test 87.8/89.0 %; "
               "from random init here (no Xception checkpoint), expect far less",
        model=dict(_XCEPTION_OS16),
        dataset="voc2012", data_dir="data/VOCdevkit/VOC2012", train_split="train_aug",
        val_split="val", image_size=(513, 513), pipeline_mode="pad", epochs=45, batch_size=16,
        optimizer="sgd", learning_rate=0.007, momentum=0.9, schedule="poly", poly_power=0.9,
        augment=dict(_PAPER_AUGMENT), weights=None,
    ),
    # research/deeplab g3doc/cityscapes.md: 90K iterations (242 epochs of 371 batches =
    # 89,782 steps), OS16, crop 769x769, batch > 8 needed to train batch norm; learning
    # rate 0.01 as mmsegmentation's DeepLabV3+ Cityscapes configs (the paper gives none).
    # Whole 1024x2048 frames are batched; the training step scales each by 0.5-2.0 and
    # takes a random 769x769 crop (AugmentConfig.crop_size), as the reference does.
    "cityscapes_xception65": TrainConfig(
        name="cityscapes_xception65", family="deeplab",
        target="Cityscapes val: 78.79 % OS16 single scale, 80.42 % OS8 scales 0.75-1.25 + flip "
               "(model zoo, ImageNet init, train_fine); the paper's 82.1 % is on the test server; "
               "from random init here, expect far less",
        model=dict(_XCEPTION_OS16),
        dataset="cityscapes", data_dir="data/cityscapes", train_split="train", val_split="val",
        image_size=None, epochs=242, batch_size=8, optimizer="sgd", learning_rate=0.01,
        momentum=0.9, schedule="poly", poly_power=0.9,
        augment={**_PAPER_AUGMENT, "crop_size": (769, 769)}, weights=None,
    ),
    # CamVid 11 classes at 360x480 with an ImageNet MobileNetV2 (keras.applications).
    "camvid_mobilenetv2": TrainConfig(
        name="camvid_mobilenetv2", family="deeplab",
        target="CamVid 11-class val mean IoU; no DeepLabv3+ paper figure exists for CamVid "
               "(README reports the measured value)",
        model={"backbone": "mobilenetv2", "alpha": 1.0, "output_stride": 16,
               "sync_batch_norm": True, "l2_weight_decay": 4e-5},
        dataset="camvid", data_dir="data/CamVid", train_split="train", val_split="val",
        image_size=None, epochs=200, batch_size=8, optimizer="sgd", learning_rate=0.01,
        momentum=0.9, schedule="poly", poly_power=0.9, augment=dict(_PAPER_AUGMENT),
        weights="auto",
    ),
    # COCO images of the 20 VOC classes (torchvision's subset, segcore.data.coco_voc) with
    # torchvision's recipe for its MobileNet models (references/segmentation: 30 epochs,
    # batch 32, SGD lr 0.01 momentum 0.9, poly 0.9, weight decay 1e-6 = l2_weight_decay
    # here, random scale 0.5-2.0, flip, 480x480 crops). Masks are rendered once into
    # cache_dir (PNG); the in-memory cache is off (decoded train2017 would need ~100 GB).
    "coco_voc_deeplab_mobilenetv2": TrainConfig(
        name="coco_voc_deeplab_mobilenetv2", family="deeplab",
        target="COCO val2017, 20 VOC classes: torchvision's deeplabv3_mobilenet_v3_large 60.3 "
               "mIoU / 91.2 pixel acc. (MobileNetV3-Large dilated to OS16, DeepLabv3 head "
               "without decoder, auxiliary loss) and lraspp_mobilenet_v3_large 57.9 / 91.2 are "
               "the nearest; this is DeepLabv3+ (ASPP + decoder) on ImageNet MobileNetV2 "
               "(keras.applications, alpha 1.0, OS16); deeplabv3_resnet50's 66.4 / 92.4 is the "
               "ResNet-50 figure",
        model={"backbone": "mobilenetv2", "alpha": 1.0, "output_stride": 16,
               "sync_batch_norm": True, "l2_weight_decay": 1e-6},
        dataset="coco_voc", data_dir="data/coco",
        dataset_options={"cache_dir": "data/coco_voc_masks"}, cache=False,
        train_split="train", val_split="val", image_size=(480, 480), pipeline_mode="pad",
        epochs=30, batch_size=32, optimizer="sgd", learning_rate=0.01, momentum=0.9,
        schedule="poly", poly_power=0.9, augment=dict(_PAPER_AUGMENT), weights="auto",
    ),
}

# The model zoo's VOC models (research/deeplab/g3doc/model_zoo.md): MobileNetV2 models
# are DeepLabv3 with image pooling + 1x1 only (the reference's atrous_rates and
# decoder_output_stride flags unset); trained at OS16 on train_aug, 513 crops, batch 16.
_ZOO_RECIPE = dict(
    family="deeplab", dataset="voc2012", data_dir="data/VOCdevkit/VOC2012",
    train_split="train_aug", val_split="val", image_size=(513, 513), pipeline_mode="pad",
    epochs=45, batch_size=16, optimizer="sgd", learning_rate=0.007, momentum=0.9,
    schedule="poly", poly_power=0.9, augment=dict(_PAPER_AUGMENT),
)
_ZOO_MOBILENET = {"backbone": "mobilenetv2", "output_stride": 16, "atrous_rates": (),
                  "decoder": False, "sync_batch_norm": True, "l2_weight_decay": 4e-5}
PRESETS.update({
    "mobilenetv2_coco_voc_trainaug": TrainConfig(
        name="mobilenetv2_coco_voc_trainaug",
        target="VOC 2012 val 75.32 % mIoU at OS16, scale 1.0, no flip; 77.33 % at OS8, scales "
               "0.5:0.25:1.75 + flip (model zoo, ImageNet+COCO init); from ImageNet here, "
               "expect less",
        model={**_ZOO_MOBILENET, "depth_multiplier": 1.0}, weights="auto", **_ZOO_RECIPE,
    ),
    "mobilenetv2_dm05_coco_voc_trainaug": TrainConfig(
        name="mobilenetv2_dm05_coco_voc_trainaug",
        target="VOC 2012 val 70.19 % mIoU at OS16, scale 1.0, no flip (model zoo, ImageNet+COCO "
               "init); no ImageNet weights of this width here (random init), expect far less",
        model={**_ZOO_MOBILENET, "depth_multiplier": 0.5}, weights=None, **_ZOO_RECIPE,
    ),
    "xception65_coco_voc_trainaug": TrainConfig(
        name="xception65_coco_voc_trainaug",
        target="VOC 2012 val 82.20 % mIoU at OS16, scale 1.0, no flip; 83.58 % at OS8, scales "
               "0.5:0.25:1.75 + flip (model zoo, ImageNet+COCO init); from random init here, "
               "expect far less",
        model={**_XCEPTION_OS16, "atrous_rates": (6, 12, 18), "decoder": True},
        weights=None, **_ZOO_RECIPE,
    ),
})

# CamVid's 11 classes weighted by median frequency balancing (SegNet's CamVid recipe),
# `segcore.class_balance.median_frequency_weights` of the 367 train labels (tested).
CAMVID_MEDIAN_FREQUENCY = (0.2794, 0.2018, 4.7889, 0.1491, 1.0, 0.4235, 3.8464, 1.9798,
                           0.789, 6.3847, 8.8193)

# Fine-tuning the published VOC model on CamVid (transfer learning, how most users start):
#   python -m deeplab_tf.convert deeplabv3_257_mv_gpu.tflite --out runs/mnv2_dm05_voc
#   python -m deeplab_tf.train --preset camvid_mobilenetv2_voc --data-dir data/CamVid
# The network is the converted one's (MobileNetV2 depth multiplier 0.5, image pooling +
# 1x1 ASPP, no decoder); --init-from copies every layer but the 21-class logits. Choices,
# each measured on 450 steps (10 epochs) against the one before (benchmarks/README.md,
# "DeepLabv3+ on CamVid from the published VOC weights"), CamVid val mean IoU:
#   * batch norm frozen: the TFLite file holds no batch-norm statistics (the converter
#     folded them into the convolutions), so its layers are identities; frozen, the
#     network stays the published one (0.469). Trained from statistics re-estimated on
#     CamVid (--recalibrate-batch-norm): 0.423, batches of 8 strongly scaled crops are
#     noisier statistics than the folded ones;
#   * no decoder: its new layers have no trained statistics either (frozen: identities)
#     and start from random weights; with it 0.412 (frozen) or 0.38 after 6 epochs
#     (trained), and a step costs twice as much;
#   * output stride 16 (the model zoo's training stride): OS8 reaches 0.488 at 2.2x the
#     cost of a step, less per minute;
#   * median frequency class weights: 0.516 instead of 0.469; pole, sign, fence,
#     pedestrian and bicyclist leave 0 IoU;
#   * SGD momentum 0.9 with the reference's poly schedule from 0.003 (0.01 diverges to a
#     constant prediction with frozen batch norm);
#   * 40 epochs (1,800 steps): about 22 minutes of a 2-core AMD EPYC in float32, within 45
#     minutes on a CPU twice as slow.
PRESETS["camvid_mobilenetv2_voc"] = TrainConfig(
    name="camvid_mobilenetv2_voc", family="deeplab",
    target="CamVid val (101 images) mean IoU >= 0.50 within 45 minutes of a 2-core CPU (fp32), "
           "fine-tuned from the published VOC DeepLabv3 MobileNetV2 (depth multiplier 0.5); "
           "SegNet with ImageNet VGG16: 0.556 on CamVid test",
    model={"backbone": "mobilenetv2", "depth_multiplier": 0.5, "output_stride": 16,
           "atrous_rates": (), "decoder": False, "freeze_batch_norm": True,
           "l2_weight_decay": 4e-5},
    dataset="camvid", data_dir="data/CamVid", train_split="train", val_split="val",
    image_size=None, epochs=40, batch_size=8, optimizer="sgd", learning_rate=0.003,
    momentum=0.9, schedule="poly", poly_power=0.9, augment=dict(_PAPER_AUGMENT),
    class_weights=list(CAMVID_MEDIAN_FREQUENCY), weights=None, init_from="runs/mnv2_dm05_voc",
)

DEFAULT_PRESET = "synthetic_deeplab"
