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
    for flag in [*cli.COMMON_FLAGS, *(o.flag for o in module.FAMILY.options), "--crop-size",
                 "--preset", "--config", "--set", "--num-classes"]:
        assert flag in text, flag
    for name in module.PRESETS:
        assert name in text, name


def test_model_flags_with_several_values_become_tuples():
    parser = cli.build_parser("prog", "", deeplab_train.PRESETS, deeplab_train.FAMILY)
    config = cli.parse_config(["--preset", "smoke", "--eval-scales", "0.5", "2"],
                              deeplab_train.PRESETS, deeplab_train.DEFAULT_PRESET, parser,
                              deeplab_train.FAMILY)
    assert config.model["eval_scales"] == (0.5, 2.0)
    assert config.augment == {**deeplab_train.PRESETS["smoke"].augment}


@pytest.mark.parametrize("module, family", [(deeplab_train, "the deeplab family"),
                                            (unet_train, "the unet family")])
def test_unknown_model_options_are_named(module, family):
    from segcore.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"model option\(s\) bogus, zeta unknown to {re.escape(family)}; "
                                          r"expected .*(eval_scales|tile_size)"):
        module.split_options({"zeta": 1, "bogus": 2, "num_classes": 3})
    options, extra = module.split_options({})
    assert options == {} and extra  # the family's own options come back with their defaults
