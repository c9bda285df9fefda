"""Bad input to the main job: one line naming the file or argument, exit status 2."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fcn_tf import train as fcn_train

FAST = ["--image-size", "64", "160", "--epochs", "1", "--batch-size", "1",
        "--steps-per-epoch", "1", "--weights", "none", "--no-export", "--overlays", "0",
        "--eval-max-images", "1"]


@pytest.fixture
def kitti(datasets_root, tmp_path):
    """A writable copy of the real KITTI Road samples (2 pairs, 'training' split)."""
    source = os.path.join(datasets_root, "kitti_road", "data_road")
    target = tmp_path / "data_road"
    shutil.copytree(source, target)
    return target


def run(capsys, *args, runs_dir):
    status = fcn_train.main([*args, "--runs-dir", str(runs_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    return status, err[-1] if err else ""


def kitti_args(root):
    return ["--dataset", "kitti_road", "--data-dir", str(root), "--train-split", "training",
            "--val-split", "training", *FAST]


def test_missing_data_dir(capsys, tmp_path):
    status, message = run(capsys, "--dataset", "kitti_road", "--data-dir",
                          str(tmp_path / "nowhere"), *FAST, runs_dir=tmp_path)
    assert status == 2
    assert message.startswith("python -m fcn_tf.train: error: kitti_road: no training/image_2")
    assert str(tmp_path / "nowhere") in message


def test_image_without_mask_names_the_stem(capsys, kitti, tmp_path):
    os.remove(kitti / "training" / "gt_image_2" / "um_road_000001.png")
    status, message = run(capsys, *kitti_args(kitti), runs_dir=tmp_path)
    assert status == 2
    assert "1 image(s)" in message and "without road ground truth" in message
    assert message.endswith("um_000001")


def test_truncated_image_names_the_file(capsys, kitti, tmp_path):
    path = kitti / "training" / "image_2" / "um_000000.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    status, message = run(capsys, *kitti_args(kitti), runs_dir=tmp_path)
    assert status == 2
    assert "um_000000.png" in message and "truncated" in message


def test_image_mask_size_mismatch_names_both(capsys, kitti, tmp_path):
    mask = kitti / "training" / "gt_image_2" / "um_road_000001.png"
    Image.open(mask).resize((600, 200), Image.NEAREST).save(mask)
    status, message = run(capsys, *kitti_args(kitti), runs_dir=tmp_path)
    assert status == 2
    assert "size mismatch" in message
    assert "um_000001.png is 1242x375" in message and "um_road_000001.png is 600x200" in message


def test_unknown_mask_colour_names_file_and_colour(capsys, kitti, tmp_path):
    mask = kitti / "training" / "gt_image_2" / "um_road_000000.png"
    pixels = np.array(Image.open(mask).convert("RGB"))
    pixels[200, 600] = (0, 255, 0)
    Image.fromarray(pixels).save(mask)
    status, message = run(capsys, *kitti_args(kitti), runs_dir=tmp_path)
    assert status == 2
    assert "um_road_000000.png: unknown mask colour (0,255,0)" in message
    assert "(255,0,255)" in message  # says what was expected


def test_num_classes_inconsistent_with_the_data(capsys, tmp_path):
    status, message = run(capsys, "--preset", "smoke", "--num-classes", "3", runs_dir=tmp_path)
    assert status == 2
    assert ("num_classes=3 is inconsistent with dataset 'synthetic_road', which has 2 classes"
            in message)


@pytest.mark.parametrize("args, expected", [
    (["--preset", "nope"], "unknown preset 'nope'; expected one of synthetic_fcn8s, smoke"),
    (["--preset", "smoke", "--variant", "fcn4s"], "variant must be one of fcn32s, fcn16s, fcn8s"),
    (["--preset", "smoke", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--preset", "smoke", "--precision", "half"], "--precision must be one of auto, fp32, mixed"),
    (["--preset", "smoke", "--optimizer", "rmsprop"], "--optimizer must be one of adam, sgd"),
    (["--preset", "smoke", "--width", "1", "--weights", "/no/such/vgg16.h5"],
     "no VGG16 weights file at /no/such/vgg16.h5"),
    (["--preset", "smoke", "--weights", "/no/such/vgg16.h5"],
     "VGG16 weights fit width 1.0 only, got width 0.125"),
    (["--preset", "smoke", "--width", "0"], "width must be a number in (0, 1], got 0"),
])
def test_bad_arguments(capsys, tmp_path, args, expected):
    status, message = run(capsys, *args, runs_dir=tmp_path)
    assert status == 2
    assert expected in message
