"""The trainers' shared command line (segcore.cli)."""

import re

import pytest

from deeplab_tf import train as deeplab_train
from fcn_tf import train as fcn_train
from segcore import cli
from unet_tf import train as unet_train


@pytest.mark.parametrize("module", [deeplab_train, fcn_train, unet_train])
def test_help_lists_every_flag(module, capsys):
    """--help formats every preset's target (some quote "78.79 %") and model flag."""
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in [*cli.COMMON_FLAGS, *module.MODEL_FLAGS, "--crop-size", "--preset"]:
        assert flag in text, flag
    for name in module.PRESETS:
        assert name in text, name


def test_model_flags_with_several_values_become_tuples():
    parser = cli.build_parser("prog", "", fcn_train.PRESETS,
                              {"--scales": ("scales", float, "some scales", "+")})
    config = cli.parse_config(["--preset", "smoke", "--scales", "0.5", "2"], fcn_train.PRESETS,
                              fcn_train.DEFAULT_PRESET, parser)
    assert config.model["scales"] == (0.5, 2.0)
    assert config.augment == {**fcn_train.PRESETS["smoke"].augment}


@pytest.mark.parametrize("module, family", [(deeplab_train, "DeepLabv3+"), (unet_train, "the U-Net")])
def test_unknown_model_options_are_named(module, family):
    from segcore.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"model option\(s\) bogus, zeta unknown to {re.escape(family)}; "
                                          r"expected .*(eval_scales|tile_size)"):
        module.split_options({"zeta": 1, "bogus": 2, "num_classes": 3})
    options, extra = module.split_options({})
    assert options == {} and extra  # the family's own options come back with their defaults
