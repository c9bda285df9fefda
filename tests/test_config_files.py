"""--config FILE, --set KEY=VALUE, re-runs from config.json, and every preset validated."""

import json
import math

import keras
import numpy as np
import pytest

from deeplab_tf import train as deeplab_train
from fcn_tf import train as fcn_train
from harness import exit_error, h5_arrays
from segcore import cli
from segcore import data as datasets
from segcore.augment import AugmentConfig
from segcore.errors import ConfigError
from segcore.training import TrainConfig, batch_norm_warm_up
from unet_tf import train as unet_train

TRAINERS = {"fcn": fcn_train, "unet": unet_train, "deeplab": deeplab_train}


def parse(module, argv, preset=None):
    parser = cli.build_parser("prog", "", module.PRESETS, module.FAMILY)
    return cli.parse_config(argv, module.PRESETS, preset or module.DEFAULT_PRESET, parser,
                            module.FAMILY)


def one_line_error(module, argv, capsys):
    return exit_error(module.main, argv, capsys)


def test_layers_apply_in_order_preset_file_flags_set(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"epochs": 5, "learning_rate": 1e-3, "model": {"dropout": 0.25},
                                "augment": {"rotation": 5}}))
    config = parse(fcn_train, ["--preset", "smoke", "--config", str(path),
                               "--learning-rate", "2e-3",
                               "--set", "learning_rate=3e-3", "--set", "model.variant=fcn16s",
                               "--set", "augment.flip=true", "--set", "image_size=(32, 96)"])
    smoke = fcn_train.PRESETS["smoke"]
    assert config.epochs == 5                                   # file over preset
    assert config.learning_rate == 3e-3                         # --set over flag over file
    assert config.model == {**smoke.model, "dropout": 0.25, "variant": "fcn16s"}  # merged
    assert config.augment == {**smoke.augment, "rotation": 5.0, "flip": True}
    assert isinstance(config.augment["rotation"], float)       # an int read as the float field
    assert config.image_size == (32, 96) and config.batch_size == smoke.batch_size


def test_yaml_config_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("epochs: 2\nmodel:\n  batch_norm_momentum: 0.9\n  eval_scales: [0.5, 1.0]\n")
    config = parse(deeplab_train, ["--preset", "camvid_mobilenetv2", "--config", str(path)])
    assert config.epochs == 2
    assert config.model["batch_norm_momentum"] == 0.9 and config.model["eval_scales"] == (0.5, 1.0)


def test_batch_norm_momentum_is_settable_by_flag_and_set():
    by_flag = parse(deeplab_train, ["--preset", "camvid_mobilenetv2",
                                    "--batch-norm-momentum", "0.9"])
    by_set = parse(deeplab_train, ["--preset", "camvid_mobilenetv2",
                                   "--set", "model.batch_norm_momentum=0.9"])
    assert by_flag.model["batch_norm_momentum"] == by_set.model["batch_norm_momentum"] == 0.9


def test_batch_norm_warm_up_warns_when_the_averages_stay_initial(caplog):
    image = keras.Input((4, 4, 3))
    slow = keras.Model(image, keras.layers.BatchNormalization(momentum=0.9997)(image))
    with caplog.at_level("WARNING", logger="segcore.training"):
        record = batch_norm_warm_up(slow, 24)  # camvid_mobilenetv2 at 2 epochs: 24 steps
    assert record["initial_value_left"] == pytest.approx(0.9997 ** 24)
    assert record["steps_to_5_percent"] == math.ceil(math.log(0.05) / math.log(0.9997)) == 9985
    assert "keep 99 % of their initial values after this run's 24 steps" in caplog.text
    assert "need 9985 steps" in caplog.text
    caplog.clear()
    fast = keras.Model(image, keras.layers.BatchNormalization(momentum=0.9)(image))
    with caplog.at_level("WARNING", logger="segcore.training"):
        assert batch_norm_warm_up(fast, 100)["initial_value_left"] == pytest.approx(0.9 ** 100)
    assert caplog.text == ""
    assert batch_norm_warm_up(keras.Model(image, keras.layers.Conv2D(2, 1)(image)), 10) is None


@pytest.mark.parametrize("document, text", [
    ({"epochz": 3}, "unknown field(s) epochz; expected name, target, family"),
    ({"epochs": "three"}, "epochs: expected an integer, got 'three'"),
    ({"model": {"variantt": "fcn8s"}}, "model option(s) variantt unknown to the fcn family; "
                                       "expected variant, dropout"),
    ({"model": {"dropout": "high"}}, "model.dropout: expected a number, got 'high'"),
    ({"augment": {"flipp": True}}, "augment option(s) flipp unknown; expected scale, flip"),
    ({"family": "unet"}, "a configuration of the 'unet' family, not 'fcn'; run it with "
                         "python -m unet_tf.train"),
    ([1, 2], "expected a mapping of TrainConfig fields, got list"),
])
def test_bad_config_files_are_one_line_errors_naming_the_key(tmp_path, capsys, document, text):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    message = one_line_error(fcn_train, ["--preset", "smoke", "--config", str(path)], capsys)
    assert str(path) in message and text in message


def test_config_file_that_is_not_json_or_missing(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"epochs": 3,,}')
    message = one_line_error(fcn_train, ["--config", str(path)], capsys)
    assert f"--config {path}: not valid JSON (" in message
    yaml_path = tmp_path / "broken.yaml"
    yaml_path.write_text("epochs: [3\n")
    assert f"--config {yaml_path}: not valid YAML (" in one_line_error(
        fcn_train, ["--config", str(yaml_path)], capsys)
    assert "no such file" in one_line_error(fcn_train, ["--config", str(tmp_path / "no.json")],
                                            capsys)


@pytest.mark.parametrize("assignment, text", [
    ("bogus=1", "--set bogus: unknown field; expected one of name, target"),
    ("model.bogus=1", "--set model.bogus: model option 'bogus' unknown to the fcn family; "
                      "expected variant"),
    ("epochs=abc", "--set epochs: expected an integer, got 'abc'"),
    ("augment.flip=maybe", "--set augment.flip: expected true or false, got 'maybe'"),
    ("epochs.x=1", "--set epochs.x: 'epochs' has no sub-fields"),
])
def test_bad_set_values_are_one_line_errors(capsys, assignment, text):
    assert text in one_line_error(fcn_train, ["--preset", "smoke", "--set", assignment], capsys)


def test_fcn_checks_its_model_options(capsys):
    """A mistyped FCN option is a ConfigError naming it (it was a TypeError of build_fcn)."""
    with pytest.raises(ConfigError, match="model option.s. dropuot unknown to the fcn family"):
        fcn_train.build(fcn_train.PRESETS["smoke"].replace(model={"dropuot": 0.5}), 2)


@pytest.mark.slow
def test_rerun_from_config_json_reproduces_the_configuration(tmp_path):
    from harness import run_trainer

    common = ["--runs-dir", str(tmp_path), "--no-export", "--overlays", "0"]
    run_trainer("fcn_tf.train", "--preset", "smoke", "--precision", "fp32", "--set", "epochs=1",
                "--learning-rate", "2e-4", *common)
    first = json.loads((tmp_path / "smoke" / "config.json").read_text())
    run_trainer("fcn_tf.train", "--config", tmp_path / "smoke" / "config.json", *common)
    second = json.loads((tmp_path / "smoke-2" / "config.json").read_text())
    assert second["name"] == "smoke-2" and second["learning_rate"] == 2e-4
    assert {k: v for k, v in second.items() if k != "name"} == \
           {k: v for k, v in first.items() if k != "name"}
    # The re-run trained the same experiment from the same seed: the same weights.
    first_w = _weights(tmp_path / "smoke")
    second_w = _weights(tmp_path / "smoke-2")
    assert first_w.keys() == second_w.keys()
    for name in first_w:
        np.testing.assert_array_equal(first_w[name], second_w[name], err_msg=name)
    # --name chooses the directory instead.
    run_trainer("fcn_tf.train", "--config", tmp_path / "smoke" / "config.json", "--name", "again",
                *common)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["name"] == "again"


def _weights(run):
    return h5_arrays(run / "checkpoints" / "final.weights.h5")


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TRAINERS))
def test_every_preset_validates_and_builds(family):
    """As Model Garden's semantic_segmentation_test validates every experiment: each preset's
    fields have their types, its model options are the family's, its dataset is known, and
    its network builds."""
    module = TRAINERS[family]
    for name, preset in module.PRESETS.items():
        assert preset.family == family, name
        document = json.loads(preset.to_json())
        checked = cli.check_document(document, module.FAMILY, name)
        assert TrainConfig(**checked).to_json() == preset.to_json(), name  # JSON round trip
        AugmentConfig(**preset.augment)
        info = datasets.info(preset.dataset)
        assert preset.target, f"{name} states no target figure"
        network, notes = module.FAMILY.build(preset.replace(weights=None, init_from=None),
                                             info.num_classes)
        assert network.count_params() > 0 and "weights_used" in notes, name
        keras.backend.clear_session()
