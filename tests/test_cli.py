"""The trainers' shared command line (segcore.cli)."""

import re

import pytest

from deeplab_tf import train as deeplab_train
from fcn_tf import train as fcn_train
from segcore import cli
from unet_tf import train as unet_train

COMMON = ("--preset --list-presets --config --set --dataset --data-dir --train-split --val-split "
          "--image-size --epochs --batch-size --steps-per-epoch --optimizer --learning-rate "
          "--momentum --weight-decay --schedule --loss-normalization --weights --init-from "
          "--recalibrate-batch-norm --precision --export-precision --devices --seed --runs-dir "
          "--name --overlays --eval-max-images --backup-every --num-classes --xla --overwrite "
          "--no-export --no-cache --crop-size").split()
MODEL_FLAGS = {  # the builders' keyword arguments (and the families' other model options)
    fcn_train: "--variant --dropout --learn-upsampling --upsampling --geometry --width",
    unet_train: ("--base-filters --depth --padding --batch-norm --dropout --upsampling "
                 "--train-tile --tile-size --tiles-per-pass --eval-rotations"),
    deeplab_train: ("--backbone --output-stride --separable --multi-grid --alpha --atrous-rates "
                    "--dropout --sync-batch-norm --freeze-batch-norm --batch-norm-momentum "
                    "--decoder --depth-multiplier --l2-weight-decay --eval-scales --eval-flip"),
}


@pytest.mark.parametrize("module", [deeplab_train, fcn_train, unet_train])
def test_help_lists_every_flag(module, capsys):
    """--help lists exactly the flags written out above, and formats every preset's target
    (some quote "78.79 %")."""
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    listed = re.findall(r"^  (--[a-z0-9-]+)", text, flags=re.MULTILINE)
    assert listed == [*COMMON, *MODEL_FLAGS[module].split()]
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

    with pytest.raises(ConfigError,
                       match=rf"model option\(s\) bogus, zeta unknown to {re.escape(family)}; "
                             r"expected .*(eval_scales|tile_size)"):
        module.split_options({"zeta": 1, "bogus": 2, "num_classes": 3})
    options, extra = module.split_options({})
    assert options == {} and extra  # the family's own options come back with their defaults
