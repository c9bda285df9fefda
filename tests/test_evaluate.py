"""`segcore.evaluate`: scores at the labels' original resolution, test-time options, CLI.

Every model here is a tiny SavedModel written by `segcore.export.export_saved_model`
in the test: "oracles" whose predictions are known exactly (a constant
class, a class read from the red channel, a left-to-right probability ramp), so
the expected confusion matrices and scores are computed independently of the
package, and a tiny random network that resizes to 64x64 internally. One slow test
trains a tiny U-Net on the real ISBI slices and compares this module's report of its
SavedModel with the trainer's metrics.json.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from harness import one_line_error
from segcore import evaluate as ev
from segcore.data.camvid import INFO as CAMVID
from segcore.data.info import pascal_palette
from segcore.data.kitti_road import INFO as KITTI
from segcore.data.voc2012 import INFO as VOC
from segcore.export import export_saved_model
from segcore.visualize import confusion_plot_size, iou_plot_size


def export(path, predict_fn, num_classes, class_names=None, palette=None, variables=()):
    names = class_names or [f"class_{i}" for i in range(num_classes)]
    palette = palette or pascal_palette(num_classes)
    export_saved_model(str(path), predict_fn, list(variables), num_classes, names, palette)
    return str(path)


def constant_fn(probabilities):
    """Every pixel gets `probabilities` (so the prediction is its argmax everywhere)."""
    constant = tf.constant(probabilities, tf.float32)

    def predict(images):
        shape = tf.shape(images)
        return tf.broadcast_to(constant, tf.concat([shape[:3], [len(probabilities)]], 0))

    return predict


def red_channel_fn(num_classes, strength=8.0):
    """Class R // 100 (clipped), probabilities softmax(strength * one_hot)."""

    def predict(images):
        ids = tf.minimum(tf.cast(images[..., 0], tf.int32) // 100, num_classes - 1)
        return tf.nn.softmax(strength * tf.one_hot(ids, num_classes), axis=-1)

    return predict


def ramp_fn(images):
    """Two classes; P(class 1) = x / (W - 1) along the image width (W = the served width)."""
    shape = tf.shape(images)
    width = tf.cast(shape[2], tf.float32)
    road = tf.range(width) / tf.maximum(width - 1.0, 1.0)
    road = tf.broadcast_to(road[None, None, :], shape[:3])
    return tf.stack([1.0 - road, road], axis=-1)


def tiny_network_fn(num_classes, seed):
    """A random 2-layer network run at 64x64, probabilities resized back (bilinear)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu",
                            name="conv1")(inputs)
    x = keras.layers.Conv2D(num_classes, 1, name="score")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upscore")(x)
    network = keras.Model(inputs, x)

    def predict(images):
        size = tf.shape(images)[1:3]
        small = tf.image.resize(tf.cast(images, tf.float32) / 127.5 - 1.0, (64, 64))
        probabilities = tf.nn.softmax(4.0 * network(small), axis=-1)
        return tf.image.resize(probabilities, size)

    return predict, network.variables


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    made = {}
    for name, classes in (("voc", VOC), ("camvid", CAMVID)):
        fn, variables = tiny_network_fn(classes.num_classes, seed=len(name))
        made[f"{name}_net"] = export(root / f"{name}_net", fn, classes.num_classes,
                                     classes.class_names, classes.palette, variables)
        made[f"{name}_const"] = export(root / f"{name}_const",
                                       constant_fn([0.9] + [0.1 / (classes.num_classes - 1)]
                                                   * (classes.num_classes - 1)),
                                       classes.num_classes, classes.class_names, classes.palette)
    made["road_const"] = export(root / "road_const", constant_fn([0.6, 0.4]), 2,
                                KITTI.class_names, KITTI.palette)
    made["ramp"] = export(root / "ramp", ramp_fn, 2, KITTI.class_names, KITTI.palette)
    # A run directory: RUN_DIR/saved_model.
    made["red_run"] = str(root / "red_run")
    export(root / "red_run" / "saved_model", red_channel_fn(4), 4)
    return made


# --------------------------------------------------------------------------- real samples


def voc_first(root, count):
    ids = open(os.path.join(root, "ImageSets", "Segmentation", "train.txt")).read().split()[:count]
    return [np.array(Image.open(os.path.join(root, "SegmentationClass", f"{i}.png"))) for i in ids]


def camvid_first(root, count):
    names = sorted(os.listdir(os.path.join(root, "valannot")))[:count]
    labels = [np.array(Image.open(os.path.join(root, "valannot", n))) for n in names]
    return [np.where(mask == 11, 255, mask) for mask in labels]   # 11 = void


@pytest.mark.parametrize("name, folder, split, read_labels", [
    ("voc2012", "voc2012", "train", voc_first),
    ("camvid", "camvid", "val", camvid_first),
])
def test_scores_at_original_resolution_on_real_samples(models, datasets_root, tmp_path, name,
                                                       folder, split, read_labels):
    """Confusion rows = label histogram of the ORIGINAL label images, void excluded."""
    prefix = "voc" if name == "voc2012" else "camvid"
    info = VOC if name == "voc2012" else CAMVID
    labels = read_labels(os.path.join(datasets_root, folder), 3)
    # the samples really are large and really contain void pixels
    assert all(mask.shape[0] * mask.shape[1] >= 300 * 300 for mask in labels)
    assert sum(int((mask == 255).sum()) for mask in labels) > 1000
    truth = sum(np.bincount(mask[mask != 255].ravel(), minlength=info.num_classes)
                for mask in labels)

    report = ev.evaluate(models[f"{prefix}_net"], name, os.path.join(datasets_root, folder), split,
                         out_dir=str(tmp_path / "net"), max_images=3)
    confusion = np.array(report["confusion_matrix"])
    assert report["num_images"] == 3
    assert confusion.shape == (info.num_classes, info.num_classes)
    np.testing.assert_array_equal(confusion.sum(axis=1), truth)   # labels never resized
    assert report["num_pixels"] == confusion.sum() == truth.sum()

    # The constant oracle predicts class 0 everywhere: every score is known exactly.
    report = ev.evaluate(models[f"{prefix}_const"], name, os.path.join(datasets_root, folder),
                         split, out_dir=str(tmp_path / "const"), max_images=3)
    expected = np.zeros_like(confusion)
    expected[:, 0] = truth
    np.testing.assert_array_equal(report["confusion_matrix"], expected)
    total, first = truth.sum(), truth[0] / truth.sum()
    present = int((truth > 0).sum())
    assert report["pixel_accuracy"] == pytest.approx(first, rel=1e-12)
    assert report["mean_accuracy"] == pytest.approx(1.0 / present, rel=1e-12)
    assert report["mean_iou"] == pytest.approx(first / present, rel=1e-12)
    assert report["frequency_weighted_iou"] == pytest.approx(first ** 2, rel=1e-12)
    assert report["per_class_iou"][0] == pytest.approx(truth[0] / total, rel=1e-12)
    assert [v is None for v in report["per_class_iou"]] == [t == 0 for t in truth]


# --------------------------------------------------------------------------- exact oracle, CLI


# (label, prediction) pairs of two small images: 13 counted pixels, 3 void (255).
PAIRS = ([(0, 0)] * 3 + [(0, 1)] + [(1, 1)] * 2 + [(1, 2)] * 2 + [(2, 0)] + [(2, 2)] * 4
         + [(255, 0), (255, 1), (255, 2)])
EXPECTED_CONFUSION = [[3, 1, 0, 0], [0, 2, 2, 0], [1, 0, 4, 0], [0, 0, 0, 0]]


def write_oracle_folder(directory):
    """A `folder` dataset whose red channel is the prediction of `red_channel_fn`."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(PAIRS))
    pairs = np.array(PAIRS)[order]
    os.makedirs(directory / "images")
    os.makedirs(directory / "masks")
    for name, part, shape in (("a", pairs[:8], (2, 4)), ("b", pairs[8:], (4, 2))):
        image = rng.integers(0, 60, shape + (3,)).astype(np.uint8)
        image[..., 0] = 100 * part[:, 1].reshape(shape) + rng.integers(0, 50, shape)
        Image.fromarray(image).save(directory / "images" / f"{name}.png")
        Image.fromarray(part[:, 0].reshape(shape).astype(np.uint8)).save(
            directory / "masks" / f"{name}.png")
    return str(directory)


def test_cli_exact_scores_of_an_oracle(models, tmp_path, capsys):
    data = write_oracle_folder(tmp_path / "data")
    status = ev.main(["--model", models["red_run"], "--dataset", "folder", "--data-dir", data,
                      "--split", "all", "--option", "num_classes=4"])
    out = capsys.readouterr().out
    assert status == 0
    out_dir = os.path.join(models["red_run"], "eval_folder_all")   # default: beside saved_model
    report = json.load(open(os.path.join(out_dir, "metrics.json")))
    assert report["confusion_matrix"] == EXPECTED_CONFUSION
    assert report["num_images"] == 2 and report["num_pixels"] == 13
    assert report["pixel_accuracy"] == pytest.approx(9 / 13, rel=1e-12)
    assert report["per_class_accuracy"][:3] == pytest.approx([3 / 4, 2 / 4, 4 / 5], rel=1e-12)
    assert report["per_class_accuracy"][3] is None
    assert report["mean_accuracy"] == pytest.approx((3 / 4 + 2 / 4 + 4 / 5) / 3, rel=1e-12)
    assert report["per_class_iou"][:3] == pytest.approx([3 / 5, 2 / 5, 4 / 7], rel=1e-12)
    assert report["per_class_iou"][3] is None                 # absent: left out of the mean
    assert report["mean_iou"] == pytest.approx((3 / 5 + 2 / 5 + 4 / 7) / 3, rel=1e-12)
    assert report["frequency_weighted_iou"] == pytest.approx(
        4 / 13 * 3 / 5 + 4 / 13 * 2 / 5 + 5 / 13 * 4 / 7, rel=1e-12)
    assert "road" not in report and "isbi" not in report
    # class 2 (5 of the 13 pixels) everywhere: classes 0, 1 score 0, class 3 is absent
    assert report["baseline"] == {
        "predictor": "majority class 'class_2' everywhere", "class": 2,
        "pixel_accuracy": pytest.approx(5 / 13, rel=1e-12),
        "mean_accuracy": pytest.approx(1 / 3, rel=1e-12),
        "mean_iou": pytest.approx(5 / 39, rel=1e-12),
        "frequency_weighted_iou": pytest.approx(25 / 169, rel=1e-12)}
    assert (f"mean IoU                {(3 / 5 + 2 / 5 + 4 / 7) / 3:.4f}   "
            f"(majority-class baseline {5 / 39:.4f})") in out
    assert f"pixel accuracy          {9 / 13:.4f}   (majority-class baseline {5 / 13:.4f})" in out
    # the figures, at their documented sizes
    for name, size in (("confusion_matrix.png", confusion_plot_size(4)),
                       ("per_class_iou.png", iou_plot_size(4))):
        with Image.open(os.path.join(out_dir, name)) as image:
            assert image.format == "PNG" and image.size == size
            assert np.asarray(image.convert("L")).std() > 10   # not a blank image


# --------------------------------------------------------------------------- KITTI road


def test_road_scores_in_json(models, datasets_root, tmp_path, capsys):
    """Road probability 0.4 everywhere: the devkit scores follow from the label counts."""
    gt_dir = os.path.join(datasets_root, "kitti_road", "data_road", "training", "gt_image_2")
    road = not_road = 0
    for name in sorted(os.listdir(gt_dir)):
        if "_road_" in name:
            gt = np.array(Image.open(os.path.join(gt_dir, name)).convert("RGB")).reshape(-1, 3)
            road += int(np.all(gt == (255, 0, 255), axis=1).sum())
            not_road += int(np.all(gt == (255, 0, 0), axis=1).sum())
    assert road > 0 and not_road > 0
    out = tmp_path / "road"
    status = ev.main(["--model", models["road_const"], "--dataset", "kitti_road",
                      "--data-dir", os.path.join(datasets_root, "kitti_road"),
                      "--split", "training", "--out", str(out), "--overlays", "4"])
    assert status == 0
    max_f = 2 * road / (2 * road + not_road)             # 2p / (1 + p), p the road share
    assert f"MaxF {max_f:.4f} ({max_f:.4f})" in capsys.readouterr().out
    # Overlays are named after the split they show (2 frames in the sample).
    assert sorted(os.listdir(out / "overlays")) == ["training_000.png", "training_001.png"]
    report = json.load(open(out / "metrics.json"))
    assert report["confusion_matrix"] == [[not_road, 0], [road, 0]]   # argmax: not road
    precision = road / (road + not_road)
    # every threshold k <= round(0.4 * 255) = 102 marks every pixel road; higher ones none
    assert report["road"]["max_f"] == pytest.approx(2 * precision / (precision + 1), rel=1e-9)
    assert report["road"]["ap"] == pytest.approx(precision, rel=1e-9)
    assert report["road"]["precision"] == pytest.approx(precision, rel=1e-12)
    assert report["road"]["recall"] == 1.0
    assert report["road"]["fpr"] == 1.0
    assert report["road"]["fnr"] == 0.0
    assert report["road"]["threshold"] == 0.0
    # The constant-probability baseline scores exactly what this constant model scores.
    assert report["baseline"]["road"] == {
        "predictor": "constant road probability (every constant scores the same)",
        "road_fraction": pytest.approx(precision, rel=1e-12), **report["road"]}
    assert report["baseline"]["class"] == (0 if not_road >= road else 1)


# --------------------------------------------------------------------------- test-time options


def test_window_starts():
    assert ev.window_starts(10, 4, 3) == [0, 3, 6]
    assert ev.window_starts(11, 4, 3) == [0, 3, 6, 7]      # the last window ends at the border
    assert ev.window_starts(4, 4, 2) == [0]
    assert ev.window_starts(3, 4, 2) == [0]


def test_multiscale_and_flip(models):
    model = ev.ServingModel(models["ramp"])
    image = np.random.default_rng(1).integers(0, 256, (1, 9, 13, 3)).astype(np.uint8)
    plain = model.probabilities(image).numpy()
    np.testing.assert_allclose(plain[0, 0, :, 1], np.arange(13) / 12, atol=1e-7)

    # scales=(1.0,) without flip is the plain prediction, bit for bit
    same = ev.make_predictor(model.probabilities, ev.InferenceOptions(scales=(1.0,)))(image)
    np.testing.assert_array_equal(same.numpy(), plain)
    # a ramp served at any scale and resized back (align_corners) is the same ramp
    scaled = ev.make_predictor(model.probabilities,
                               ev.InferenceOptions(scales=(0.5, 1.0, 1.75)))(image)
    np.testing.assert_allclose(scaled.numpy(), plain, atol=1e-5)
    # flipped back, the flipped ramp is 1 - ramp: the average is 0.5 everywhere
    flipped = ev.make_predictor(model.probabilities, ev.InferenceOptions(flip=True))(image)
    np.testing.assert_allclose(flipped.numpy(), 0.5, atol=1e-6)


def test_sliding_window(models):
    model = ev.ServingModel(models["ramp"])
    image = np.zeros((1, 5, 6, 3), np.uint8)
    plain = model.probabilities(image).numpy()
    covering = ev.make_predictor(model.probabilities, ev.InferenceOptions(crop=(5, 6)))(image)
    np.testing.assert_array_equal(covering.numpy(), plain)
    larger = ev.make_predictor(model.probabilities, ev.InferenceOptions(crop=(64, 64)))(image)
    np.testing.assert_array_equal(larger.numpy(), plain)
    # windows 4 px wide at x = 0 and 2, each with its own ramp (0, 1/3, 2/3, 1), averaged
    windows = ev.make_predictor(model.probabilities,
                                ev.InferenceOptions(crop=(5, 4), stride=(5, 2)))(image).numpy()
    np.testing.assert_allclose(windows[0, :, :, 1],
                               np.tile([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1], (5, 1)), atol=1e-6)
    np.testing.assert_allclose(windows.sum(-1), 1.0, atol=1e-6)

    # a per-pixel model is the same in windows (default stride 2/3 of the crop) as whole
    red = ev.ServingModel(models["red_run"])
    photo = np.random.default_rng(2).integers(0, 256, (1, 37, 53, 3)).astype(np.uint8)
    options = ev.InferenceOptions(crop=(16, 20))
    assert options.stride == (11, 14)
    np.testing.assert_allclose(ev.make_predictor(red.probabilities, options)(photo).numpy(),
                               red.probabilities(photo).numpy(), atol=1e-6)


def write_crf_folder(directory, size=24):
    """Left half dark (class 0), right half bright (class 1)."""
    os.makedirs(directory / "images")
    os.makedirs(directory / "masks")
    image = np.full((size, size, 3), 50, np.uint8)
    image[:, size // 2:] = 200
    labels = np.zeros((size, size), np.uint8)
    labels[:, size // 2:] = 1
    Image.fromarray(image).save(directory / "images" / "x.png")
    Image.fromarray(labels).save(directory / "masks" / "x.png")
    return str(directory), labels


def test_crf_option_removes_isolated_errors(tmp_path, capsys):
    data, labels = write_crf_folder(tmp_path / "data")
    noisy = labels.copy()
    flips = [(3, 3), (5, 17), (10, 8), (15, 20), (20, 4), (18, 14)]  # isolated, off the border
    for y, x in flips:
        noisy[y, x] = 1 - noisy[y, x]
    weak = tf.nn.softmax(tf.one_hot(noisy, 2), axis=-1)   # p = 0.73 for the predicted class
    model = export(tmp_path / "noisy", lambda images: tf.broadcast_to(
        weak, tf.concat([tf.shape(images)[:1], tf.shape(weak)], 0)), 2)

    def run(*extra):
        out = tmp_path / f"out{len(extra)}"
        status = ev.main(["--model", model, "--dataset", "folder", "--data-dir", data,
                          "--split", "all", "--out", str(out), *extra])
        assert status == 0, capsys.readouterr().err
        return json.load(open(out / "metrics.json"))

    plain = run()
    assert plain["pixel_accuracy"] == pytest.approx(1 - len(flips) / labels.size, rel=1e-12)
    assert run("--crf", "--crf-iterations", "0")["confusion_matrix"] == plain["confusion_matrix"]
    refined = run("--crf", "--crf-iterations", "5")
    assert refined["inference"]["crf"] is True
    assert refined["pixel_accuracy"] == 1.0


def test_crf_zero_iterations_is_the_plain_prediction(models):
    model = ev.ServingModel(models["red_run"])
    image = np.random.default_rng(3).integers(0, 256, (1, 12, 15, 3)).astype(np.uint8)
    crf = ev.make_predictor(model.probabilities, ev.InferenceOptions(crf=True, crf_iterations=0))
    np.testing.assert_allclose(crf(image).numpy(), model.probabilities(image).numpy(), atol=1e-6)


# --------------------------------------------------------------------------- bad input


def saved_model_without_signature(path, signature_name, spec=tf.TensorSpec([None, None, None, 3],
                                                                           tf.uint8, "images")):
    module = tf.Module()
    module.fn = tf.function(lambda images: {"probabilities": tf.cast(images, tf.float32)},
                            input_signature=[spec])
    signatures = {signature_name: module.fn.get_concrete_function()}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return str(path)


def test_bad_inputs_give_one_line_messages(models, datasets_root, tmp_path, capsys):
    voc = os.path.join(datasets_root, "voc2012")

    def run(model, dataset="voc2012", data_dir=voc, *extra):
        return ev.main(["--model", model, "--dataset", dataset, "--data-dir", data_dir,
                        "--split", "train", "--out", str(tmp_path / "out"), *extra])

    assert run(models["camvid_net"]) == 2
    err = one_line_error(capsys)
    assert "has 11 classes" in err and "dataset 'voc2012' has 21" in err

    other = saved_model_without_signature(tmp_path / "other", "predict")
    assert run(other) == 2
    err = one_line_error(capsys)
    assert f"{other}: SavedModel has no signature serving_default (found predict)" in err

    no_metadata = saved_model_without_signature(tmp_path / "no_meta", "serving_default")
    assert run(no_metadata) == 2
    assert "has no signature metadata" in one_line_error(capsys)

    wrong_input = saved_model_without_signature(
        tmp_path / "float_in", "serving_default", tf.TensorSpec([None, 8, 8, 3], tf.float32, "x"))
    assert run(wrong_input) == 2
    assert "serving_default takes (x float32" in one_line_error(capsys)

    assert run(str(tmp_path / "missing")) == 2
    assert f"--model {tmp_path / 'missing'}: no such file or directory" in one_line_error(capsys)
    assert run(str(tmp_path)) == 2
    assert "not a SavedModel directory" in one_line_error(capsys)

    assert run(models["voc_net"], "voc2012", str(tmp_path)) == 2
    assert "voc2012: no JPEGImages" in one_line_error(capsys)
    assert run(models["voc_net"], "voc2012", voc, "--crop", "0", "8") == 2
    assert "--crop takes two positive integers" in one_line_error(capsys)


@pytest.mark.slow
def test_module_entry_point_exit_status(models, datasets_root, tmp_path):
    """`python -m segcore.evaluate` in a fresh process: one line on stderr, exit 2."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "segcore.evaluate", "--model", models["road_const"],
         "--dataset", "voc2012", "--data-dir", os.path.join(datasets_root, "voc2012"),
         "--split", "train", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "segcore.evaluate" in line]
    assert lines == [f"python -m segcore.evaluate: error: --model {models['road_const']} has 2 "
                     "classes (not_road, road) but dataset 'voc2012' has 21 "
                     f"({', '.join(VOC.class_names)})"]


# --------------------------------------------------------------------------- ISBI, layering


@pytest.mark.slow
def test_isbi_errors_of_a_unet_saved_model_equal_the_trainers(datasets_root, tmp_path):
    """A tiny U-Net trained a few steps on the real ISBI slices: `python -m segcore.evaluate`
    on its run directory reports the ISBI errors and baselines of the run's metrics.json."""
    import imageio.v3 as iio

    from harness import run_trainer

    data_dir = os.path.join(datasets_root, "isbi2012")
    run_trainer("unet_tf.train", "--data-dir", data_dir, "--train-split", "val",
                "--base-filters", "4", "--depth", "2", "--tile-size", "132",
                "--steps-per-epoch", "2", "--epochs", "1", "--eval-max-images", "2",
                "--overlays", "0", "--runs-dir", tmp_path)
    run = tmp_path / "isbi_unet"
    trained = json.load(open(run / "metrics.json"))
    result = run_trainer("segcore.evaluate", "--model", run, "--dataset", "isbi2012",
                         "--data-dir", data_dir, "--split", "val", "--max-images", "2",
                         "--out", tmp_path / "eval")
    report = json.load(open(tmp_path / "eval" / "metrics.json"))

    assert report["confusion_matrix"] == trained["confusion_matrix"]
    assert set(report["isbi"]) == {"slices", "threshold", "pixel_error", "foreground_iou",
                                   "rand_error", "warping_error", "rand_error_best",
                                   "rand_error_best_threshold"}
    assert report["isbi"] == pytest.approx(trained["isbi"], rel=1e-9, abs=1e-12)
    assert report["isbi"]["slices"] == 2
    assert report["baseline"] == trained["baseline"]
    # The baselines from the label files alone (val = slices 20-23; membrane stored as 0).
    labels = [iio.imread(os.path.join(data_dir, "train", "label", f"{i}.png")) for i in (20, 21)]
    membrane = np.mean([np.mean(label == 0) for label in labels])   # equal slice sizes
    assert report["baseline"]["class"] == 0 and 0.1 < membrane < 0.4
    assert report["baseline"]["pixel_accuracy"] == pytest.approx(1 - membrane, rel=1e-12)
    assert report["baseline"]["isbi"]["pixel_error"] == pytest.approx(membrane, rel=1e-12)
    assert report["baseline"]["isbi"]["rand_error"] > 0.5        # every cell merged into one
    out = result.stdout
    isbi, constant = report["isbi"], report["baseline"]["isbi"]
    assert (f"pixel error {isbi['pixel_error']:.4f} ({constant['pixel_error']:.4f}), "
            f"Rand error {isbi['rand_error']:.4f} ({constant['rand_error']:.4f})") in out
    assert (f"mean IoU                {report['mean_iou']:.4f}   "
            f"(majority-class baseline {report['baseline']['mean_iou']:.4f})") in out
    log = (run / "train.log").read_text()
    assert f"pixel error {isbi['pixel_error']:.4f} ({constant['pixel_error']:.4f})" in log
    assert f"(majority-class baseline {report['baseline']['mean_iou']:.4f})" in log


def test_the_engine_imports_no_model_family():
    """segcore is below the families: evaluating and training load them only by name."""
    import subprocess
    import sys

    script = ("import sys, segcore.evaluate, segcore.training, segcore.dataset_scores\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('fcn_tf', 'unet_tf', 'deeplab_tf')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
