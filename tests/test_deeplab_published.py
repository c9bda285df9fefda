"""deeplab_tf.published: the published TFLite DeepLab v3 on real VOC images."""

import os

import numpy as np
import pytest

from deeplab_tf.published import PublishedDeepLab
from segcore import data as datasets
from segcore.baseline import majority_class
from segcore.errors import ConfigError
from segcore.metrics import confusion_matrix, segmentation_scores


@pytest.fixture(scope="module")
def weights_dir(datasets_root):
    path = os.environ.get("SEGCORE_WEIGHTS") or os.path.join(os.path.dirname(
        os.path.abspath(datasets_root)), "weights")
    if not os.path.isfile(os.path.join(path, "deeplabv3_257_mv_gpu.tflite")):
        pytest.fail(f"published weights not found in {path} (set SEGCORE_WEIGHTS)")
    return path


def test_published_deeplab_segments_voc_images(weights_dir, datasets_root):
    model = PublishedDeepLab(weights_dir)
    pairs = datasets.load("voc2012", os.path.join(datasets_root, "voc2012"), "train").take(4)
    confusion = np.zeros((21, 21), np.int64)
    for image, labels in pairs:
        logits = model.logits(image.numpy())
        assert logits.shape == image.shape[:2] + (21,)
        confusion += confusion_matrix(labels, logits.argmax(-1), 21).numpy()
    scores, baseline = segmentation_scores(confusion), majority_class(confusion)
    # The published model on these 4 images (7 classes present): mean IoU 0.361 and pixel
    # accuracy 0.900; predicting background everywhere scores 0.110 and 0.767.
    assert scores["mean_iou"] == pytest.approx(0.361, abs=0.01), scores
    assert scores["pixel_accuracy"] == pytest.approx(0.900, abs=0.01), scores
    assert baseline["mean_iou"] == pytest.approx(0.110, abs=0.001), baseline
    assert scores["mean_iou"] > baseline["mean_iou"] + 0.2


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such TFLite file"):
        PublishedDeepLab(str(tmp_path))
