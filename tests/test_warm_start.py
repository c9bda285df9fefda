"""segcore.warm_start: `--init-from RUN_DIR` copies the layers that match by path or name
and weight shapes, leaves the others at their fresh initialisation and says which and why.

The source run directories are written here from tiny networks whose every weight
(batch-norm moving statistics included) is set to random values, so a copied weight is
told from a fresh one bit for bit. One test converts the published DeepLab TFLite file
(../shared/weights, found beside SEGCORE_DATASETS or named by SEGCORE_WEIGHTS).
"""

import json
import logging
import os
import re

import keras
import numpy as np
import pytest

from deeplab_tf.model import build_deeplabv3plus
from harness import run_trainer
from segcore import warm_start
from segcore.errors import ConfigError
from segcore.training import TrainConfig, load_run

# DeepLabv3 on a MobileNetV2 of width 0.35: ~0.45 M parameters, 109 layers with weights.
TINY = {"backbone": "mobilenetv2", "alpha": 0.35, "output_stride": 16, "decoder": False,
        "atrous_rates": ()}


def randomise(network, seed):
    """Every weight of `network` set to values in [0.5, 1.5) (positive: moving variances)."""
    rng = np.random.default_rng(seed)
    network.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                         for w in network.get_weights()])


def write_run(run_dir, network, family, model, num_classes, dataset):
    """A finished run directory of `network`, as `segcore.training.load_run` reads it."""
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    config = TrainConfig(name=os.path.basename(run_dir), family=family, model=model,
                         dataset=dataset, weights=None)
    document = json.loads(config.to_json())
    document["resolved"] = {"num_classes": num_classes}
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(document, f)
    network.save_weights(os.path.join(run_dir, "checkpoints", "final.weights.h5"))
    return run_dir


def deeplab(num_classes, seed, **options):
    keras.utils.set_random_seed(seed)
    return build_deeplabv3plus(num_classes=num_classes, **{**TINY, **options})


def weights_by_path(network):
    return {path: layer.get_weights() for path, layer in warm_start.weight_layers(network)}


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """(run directory, {path: weights}) of a 4-class tiny DeepLabv3."""
    network = deeplab(4, seed=0)
    randomise(network, seed=1)
    run_dir = write_run(str(tmp_path_factory.mktemp("runs") / "shapes4"), network, "deeplab",
                        TINY, 4, "synthetic_shapes")
    return run_dir, weights_by_path(network)


def test_other_class_count_copies_all_but_the_logits(source_run, caplog):
    run_dir, source = source_run
    network, reference = deeplab(6, seed=7), deeplab(6, seed=7)  # reference: no --init-from
    with caplog.at_level(logging.INFO, logger="segcore.warm_start"):
        record = warm_start.init_from_run(network, run_dir)

    mine, fresh = weights_by_path(network), weights_by_path(reference)
    assert len(mine) == 109 and set(mine) == set(source)
    for path, weights in mine.items():
        expected = fresh[path] if path == "logits" else source[path]
        assert same(weights, expected), path
    assert not same(mine["logits"][:1], [source["logits"][0][..., :1]])
    # batch norm: gamma, beta and the (non-trainable) moving mean and variance copied
    assert len(mine["bn_Conv1"]) == 4 and same(mine["bn_Conv1"], source["bn_Conv1"])

    reason = "shape [1,1,256,4] in the source, [1,1,256,6] here"
    assert record["init_from_fresh_layers"] == {"logits": reason}
    assert record["init_from_layers"] == [p for p in mine if p != "logits"]
    logits_parameters = 256 * 6 + 6
    assert record["init_from_totals"] == {
        "copied_layers": 108, "copied_parameters": network.count_params() - logits_parameters,
        "fresh_layers": 1, "fresh_parameters": logits_parameters}
    table = record["init_from_table"]
    assert [row["layer"] for row in table] == list(mine)
    assert table[-1] == {"layer": "logits", "init": "fresh", "reason": reason,
                         "parameters": logits_parameters}
    assert table[0] == {"layer": "Conv1", "init": "copied", "reason": "same name and shapes",
                        "parameters": 3 * 3 * 3 * 16}
    assert sum(row["parameters"] for row in table) == network.count_params() == 454_758

    (message,) = [r.getMessage() for r in caplog.records if r.name == "segcore.warm_start"]
    lines = message.splitlines()
    assert lines[0] == (f"--init-from {run_dir}: 108 layers ({network.count_params() - 1542} "
                        "parameters) copied, 1 layer (1542 parameters) fresh")
    assert re.fullmatch(r"logits +fresh +1542  " + re.escape(reason), lines[-3])
    assert re.fullmatch(r"bn_Conv1 +copied +64  same name and shapes", lines[3])
    assert lines[-2:] == [f"copied: 108 layers, {network.count_params() - 1542} parameters",
                          "fresh: 1 layer, 1542 parameters"]
    assert len(lines) == 1 + 1 + 109 + 2


def test_layers_not_in_the_source_stay_fresh(source_run):
    run_dir, source = source_run
    options = {"decoder": True, "atrous_rates": (6, 12, 18)}  # + decoder and atrous ASPP
    network, reference = deeplab(4, seed=3, **options), deeplab(4, seed=3, **options)
    record = warm_start.init_from_run(network, run_dir)

    mine, fresh = weights_by_path(network), weights_by_path(reference)
    extra = [path for path in mine if path not in source]
    assert {"aspp1_depthwise", "aspp3_pointwise_bn", "feature_projection0",
            "decoder_conv1_pointwise"} <= set(extra) and len(extra) == 22
    # the ASPP projection now reads 5 branches of 256 channels instead of 2
    fresh_layers = {path: "not in the source" for path in extra}
    fresh_layers["concat_projection"] = "shape [1,1,512,256] in the source, [1,1,1280,256] here"
    assert record["init_from_fresh_layers"] == fresh_layers
    for path, weights in mine.items():
        assert same(weights, fresh[path] if path in fresh_layers else source[path]), path
    totals = record["init_from_totals"]
    assert totals["copied_layers"] == 108 and totals["fresh_layers"] == 23
    assert totals["copied_parameters"] == sum(
        w.size for path, ws in source.items() if path != "concat_projection" for w in ws)
    assert totals["copied_parameters"] + totals["fresh_parameters"] == network.count_params()


def test_no_matching_layer_is_a_config_error(source_run, tmp_path):
    run_dir, _ = source_run
    image = keras.Input((None, None, 3))
    other = keras.Model(image, keras.layers.Conv2D(4, 1, name="head")(image))
    with pytest.raises(ConfigError, match=f"--init-from {re.escape(run_dir)}: no layer"):
        warm_start.init_from_run(other, run_dir)
    with pytest.raises(ConfigError, match="--init-from .*missing"):
        warm_start.init_from_run(other, str(tmp_path / "absent"))


def nested(names, filters, seed):
    """A model holding sub-models `names`, each a 1x1 Conv2D named "conv" (`filters` each)."""
    image = keras.Input((None, None, 3), name="image")
    outputs = []
    for name, count in zip(names, filters):
        inner = keras.Input((None, None, 3), name="image")
        part = keras.Model(inner, keras.layers.Conv2D(count, 1, name="conv")(inner), name=name)
        outputs.append(part(image))
    model = keras.Model(image, outputs, name="outer")
    randomise(model, seed)
    return model


def test_same_names_in_sub_models_are_matched_by_path():
    source = nested(["left", "right"], [2, 2], seed=0)
    expected = weights_by_path(source)
    assert set(expected) == {"left/conv", "right/conv"}
    assert not same(expected["left/conv"], expected["right/conv"])

    network = nested(["right", "left"], [2, 2], seed=1)  # the same sub-models, other order
    records = warm_start.copy_matching_layers(network, source)
    assert [(r.path, r.copied) for r in records] == [("right/conv", True), ("left/conv", True)]
    for path, weights in weights_by_path(network).items():
        assert same(weights, expected[path]), path

    network = nested(["left", "middle"], [2, 2], seed=2)
    before = weights_by_path(network)
    records = warm_start.copy_matching_layers(network, source)
    assert records[0] == warm_start.LayerInit("left/conv", True, "same name and shapes", 8)
    assert records[1] == warm_start.LayerInit(
        "middle/conv", False, "not in the source at this path (the source has 'conv' at "
        "left/conv, right/conv; a name used more than once is matched by path)", 8)
    assert same(weights_by_path(network)["middle/conv"], before["middle/conv"])


def test_a_unique_name_is_matched_inside_and_outside_sub_models():
    source = nested(["left"], [3], seed=0)
    image = keras.Input((None, None, 3))
    flat = keras.Model(image, keras.layers.Conv2D(3, 1, name="conv")(image))
    records = warm_start.copy_matching_layers(flat, source)
    assert records == [warm_start.LayerInit(
        "conv", True, "same name and shapes (at left/conv in the source)", 12)]
    assert same(flat.get_layer("conv").get_weights(), weights_by_path(source)["left/conv"])

    wider = nested(["other"], [5], seed=1)
    assert warm_start.copy_matching_layers(wider, source) == [warm_start.LayerInit(
        "other/conv", False, "shape [1,1,3,3] in the source, [1,1,3,5] here "
        "(at left/conv in the source)", 20)]


def test_overlap_tile_unet_is_matched_by_its_inner_layers(tmp_path):
    from unet_tf.train import FAMILY

    config = TrainConfig(family="unet", model={"base_filters": 4, "depth": 2}, weights=None)
    keras.utils.set_random_seed(0)
    source, _ = FAMILY.build(config, 2)
    assert isinstance(source.layers[0], keras.Model)  # the U-Net nested in OverlapTileUNet
    randomise(source, seed=1)
    run_dir = write_run(str(tmp_path / "unet2"), source, "unet", config.model, 2,
                        "synthetic_membranes")
    expected = weights_by_path(source)

    keras.utils.set_random_seed(5)
    network, _ = FAMILY.build(config, 3)
    keras.utils.set_random_seed(5)
    reference = weights_by_path(FAMILY.build(config, 3)[0])
    record = warm_start.init_from_run(network, run_dir)
    mine = weights_by_path(network)
    assert all(path.startswith("unet/") for path in mine) and len(mine) == 13
    assert record["init_from_fresh_layers"] == {
        "unet/logits": "shape [1,1,4,2] in the source, [1,1,4,3] here"}
    for path, weights in mine.items():
        assert same(weights, reference[path] if path == "unet/logits" else expected[path]), path
    assert sum(row["parameters"] for row in record["init_from_table"]) == network.count_params()


@pytest.fixture(scope="module")
def tflite_path(datasets_root):
    folder = os.environ.get("SEGCORE_WEIGHTS") or os.path.join(os.path.dirname(datasets_root),
                                                               "weights")
    path = os.path.join(folder, "deeplabv3_257_mv_gpu.tflite")
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: the published DeepLab TFLite file (see "
                    "../shared/weights/README.md); set SEGCORE_WEIGHTS to its folder")
    return path


def test_published_voc_model_initialises_an_11_class_camvid_network(tflite_path, tmp_path):
    from deeplab_tf.convert import convert
    from deeplab_tf.presets import PRESETS
    from deeplab_tf.train import FAMILY

    run_dir = convert(tflite_path, str(tmp_path / "mnv2_dm05_voc"), export=False)
    _, _, task, num_classes = load_run(run_dir)
    assert num_classes == 21
    source = weights_by_path(task.network)
    with open(os.path.join(run_dir, "config.json")) as f:
        converted = json.load(f)["model"]
    assert converted == {"backbone": "mobilenetv2", "depth_multiplier": 0.5, "output_stride": 8,
                         "atrous_rates": [], "decoder": False}
    camvid = PRESETS["camvid_mobilenetv2"]
    config = camvid.replace(model={**camvid.model, **converted}, weights=None,
                            init_from=run_dir)
    keras.utils.set_random_seed(0)
    network, _ = FAMILY.build(config, 11)
    keras.utils.set_random_seed(0)
    reference = weights_by_path(FAMILY.build(config, 11)[0])

    record = warm_start.init_from_run(network, run_dir)
    mine = weights_by_path(network)
    assert record["init_from_fresh_layers"] == {
        "logits": "shape [1,1,256,21] in the source, [1,1,256,11] here"}
    assert record["init_from_layers"] == [path for path in mine if path != "logits"]
    assert record["init_from_totals"] == {"copied_layers": 108, "copied_parameters": 708_928,
                                          "fresh_layers": 1, "fresh_parameters": 256 * 11 + 11}
    assert network.count_params() == 708_928 + 2827
    for path, weights in mine.items():
        assert same(weights, reference[path] if path == "logits" else source[path]), path


@pytest.mark.slow
def test_init_from_on_the_command_line_records_the_table(tmp_path):
    runs = tmp_path / "runs"
    common = ("--epochs", 1, "--steps-per-epoch", 1, "--eval-max-images", 1, "--overlays", 0,
              "--no-export", "--precision", "fp32", "--runs-dir", runs)
    run_trainer("deeplab_tf.train", "--preset", "smoke", "--name", "shapes", *common)
    run_trainer("deeplab_tf.train", "--preset", "smoke", "--name", "road", "--dataset",
                "synthetic_road", "--set", "dataset_options.count=4", "--init-from",
                runs / "shapes", *common)
    with open(runs / "road" / "config.json") as f:
        resolved = json.load(f)["resolved"]
    reason = "shape [1,1,256,4] in the source, [1,1,256,2] here"
    assert resolved["num_classes"] == 2
    assert resolved["init_from_fresh_layers"] == {"logits": reason}
    table = resolved["init_from_table"]
    assert resolved["init_from_layers"] == [row["layer"] for row in table[:-1]]
    assert table[-1] == {"layer": "logits", "init": "fresh", "reason": reason,
                         "parameters": 256 * 2 + 2}
    totals = resolved["init_from_totals"]
    assert totals["fresh_layers"] == 1 and totals["copied_layers"] == len(table) - 1
    assert totals["copied_parameters"] == sum(row["parameters"] for row in table[:-1])
    with open(runs / "road" / "train.log") as f:
        log = f.read()
    assert re.search(r"^logits +fresh +514  " + re.escape(reason) + "$", log, re.MULTILINE)
    assert f"copied: {totals['copied_layers']} layers, {totals['copied_parameters']} " \
           "parameters\nfresh: 1 layer, 514 parameters" in log
