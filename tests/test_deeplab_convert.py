"""Published research/deeplab weights through `deeplab_tf.convert`.

The real file is the TensorFlow team's DeepLabv3 MobileNetV2 (depth multiplier
0.5, VOC 2012) of the TFLite GPU demo, in the `weights` folder beside
SEGCORE_DATASETS or the one SEGCORE_WEIGHTS names; the tests fail when it is missing.

Real research/deeplab checkpoints and frozen graphs are not available here. Those
two paths are tested on files written by the tests under the reference's variable
names and shapes (`mobilenet_v2_variables`, derived from the reference code in
tests/test_deeplab_zoo_options.py and checked here against the real TFLite file),
holding the TFLite model's weights with its folded batch norm split back into
random batch-norm statistics: the converted network must then give the TFLite
interpreter's logits, which checks every name, layout and batch-norm slot.
"""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_deeplab_zoo_options import batch_norm_epsilon, mobilenet_v2_variables

from segcore.errors import ConfigError

TFLITE_NAME = "deeplabv3_257_mv_gpu.tflite"
SIZE = 257
IMAGES = 3


@pytest.fixture(scope="module")
def tflite_path(datasets_root):
    folder = os.environ.get("SEGCORE_WEIGHTS") or os.path.join(os.path.dirname(datasets_root),
                                                               "weights")
    path = os.path.join(folder, TFLITE_NAME)
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: the published DeepLab TFLite file (see "
                    "../shared/weights/README.md); set SEGCORE_WEIGHTS to its folder")
    return path


@pytest.fixture(scope="module")
def interpreter(tflite_path):
    interpreter = tf.lite.Interpreter(model_path=tflite_path)
    interpreter.allocate_tensors()
    return interpreter


@pytest.fixture(scope="module")
def voc_inputs(datasets_root):
    """Preprocessed VOC images at 257 x 257 ([-1, 1], bilinear with aligned corners)."""
    files = sorted(glob.glob(os.path.join(datasets_root, "voc2012", "JPEGImages", "*.jpg")))
    assert len(files) >= IMAGES, f"VOC sample missing under {datasets_root}"
    batch = []
    for path in files[:IMAGES]:
        image = np.asarray(Image.open(path).convert("RGB"), np.float32)[None] / 127.5 - 1.0
        batch.append(tf.raw_ops.ResizeBilinear(images=image, size=[SIZE, SIZE],
                                               align_corners=True).numpy())
    return batch


@pytest.fixture(scope="module")
def reference_logits(interpreter, voc_inputs):
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    logits = []
    for x in voc_inputs:
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        logits.append(interpreter.get_tensor(target).copy())
    return logits


@pytest.fixture(scope="module")
def tflite_weights(interpreter):
    """{reference name: array}: the TFLite file's kernels in checkpoint layout and
    its folded biases under `<scope>/folded_bias`."""
    values = {}
    for detail in interpreter.get_tensor_details():
        name = detail["name"]
        if name.endswith(("/weights", "/depthwise_weights")):
            # TFLite [out, kh, kw, in] and depthwise [1, kh, kw, C]
            # -> [kh, kw, in, out] / [kh, kw, C, 1]
            values[name] = np.transpose(interpreter.get_tensor(detail["index"]), (1, 2, 3, 0))
        elif name.endswith(("/Conv2D_bias", "/depthwise_bias")):
            values[name.rsplit("/", 1)[0] + "/folded_bias"] = interpreter.get_tensor(
                detail["index"])
    return values


def unfolded_checkpoint_values(tflite_weights, seed=0):
    """Reference-named checkpoint values equivalent to the TFLite model: for each
    folded (W_f, b_f), random gamma > 0, mean, variance and W = W_f * s / gamma,
    beta = b_f + gamma * mean / s, s = sqrt(variance + eps) (the reference's eps)."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in mobilenet_v2_variables(0.5).items():
        scope, leaf = name.rsplit("/", 1)
        if leaf in ("weights", "depthwise_weights"):
            kernel = tflite_weights[name]
            if scope == "logits/semantic":
                values[name] = kernel
                values["logits/semantic/biases"] = tflite_weights["logits/semantic/folded_bias"]
                continue
            bias = tflite_weights[f"{scope}/folded_bias"]
            channels = bias.shape[0]
            gamma = rng.uniform(0.5, 2.0, channels).astype(np.float32)
            mean = rng.normal(0.0, 0.5, channels).astype(np.float32)
            variance = rng.uniform(0.25, 4.0, channels).astype(np.float32)
            s = np.sqrt(variance + batch_norm_epsilon(scope))
            axis_scale = (s / gamma).reshape((1, 1, -1, 1) if leaf == "depthwise_weights"
                                             else (1, 1, 1, -1))
            values[name] = (kernel * axis_scale).astype(np.float32)
            values[f"{scope}/BatchNorm/gamma"] = gamma
            values[f"{scope}/BatchNorm/beta"] = (bias + gamma * mean / s).astype(np.float32)
            values[f"{scope}/BatchNorm/moving_mean"] = mean
            values[f"{scope}/BatchNorm/moving_variance"] = variance
    assert {k: tuple(v.shape) for k, v in values.items()} == dict(mobilenet_v2_variables(0.5))
    return values


def write_checkpoint(prefix, values):
    """A TF1-style (name-keyed) V2 checkpoint, as research/deeplab's Saver writes."""
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    return prefix


def write_frozen_graph(path, values):
    """A GraphDef as `freeze_graph` leaves it: each variable a Const of its name read by
    `<name>/read`, plus constants that are not weights (the preprocessing's 127.5, a size)."""
    graph = tf.compat.v1.GraphDef()
    for name, value in sorted(values.items()):
        node = graph.node.add(name=name, op="Const")
        node.attr["dtype"].type = tf.float32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        read = graph.node.add(name=f"{name}/read", op="Identity", input=[name])
        read.attr["T"].type = tf.float32.as_datatype_enum
    for name, value in (("sub_7/y", np.float32(127.5)),
                        ("ResizeBilinear_3/size", np.int32([513, 513]))):
        node = graph.node.add(name=name, op="Const")
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    with open(path, "wb") as f:
        f.write(graph.SerializeToString())
    return path


def max_difference(network, voc_inputs, reference_logits):
    worst, agree, total = 0.0, 0, 0
    for x, reference in zip(voc_inputs, reference_logits):
        ours = network(x).numpy()
        worst = max(worst, float(np.abs(ours - reference).max()))
        agree += int((ours.argmax(-1) == reference.argmax(-1)).sum())
        total += reference[..., 0].size
    return worst, agree / total


@pytest.fixture(scope="module")
def converted(tflite_path):
    from deeplab_tf.convert import load_reference_network
    return load_reference_network(tflite_path)


def test_reference_table_is_the_real_files_names_and_shapes(interpreter):
    """The table derived from the reference code = the published file's kernels."""
    tensors = {d["name"]: tuple(d["shape"].tolist()) for d in interpreter.get_tensor_details()}
    kernels = {k: s for k, s in mobilenet_v2_variables(0.5).items() if k.endswith("weights")}
    assert set(kernels) == {k for k in tensors if k.endswith("weights")}
    for name, (kh, kw, cin, cout) in kernels.items():
        # TFLite: [out, kh, kw, in]; depthwise [1, kh, kw, C] (cout = 1 in checkpoint layout)
        assert tensors[name] == (cout, kh, kw, cin), name


def test_tflite_conversion_gives_the_tflite_logits(converted, voc_inputs, reference_logits):
    network, options, fmt = converted
    assert fmt == "tflite"
    assert options == {"backbone": "mobilenetv2", "depth_multiplier": 0.5, "output_stride": 8,
                       "atrous_rates": [], "decoder": False}
    worst, agreement = max_difference(network, voc_inputs, reference_logits)
    # Measured 1.9e-4 on logits of magnitude ~40 (float32 summation order).
    assert worst < 1e-3, worst
    assert agreement > 0.999, agreement


def test_folded_batch_norm_becomes_an_identity_batch_norm(converted, tflite_weights):
    network = converted[0]
    bn = network.get_layer("block_5_project_BN")
    gamma, beta, mean, variance = bn.get_weights()
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_allclose(variance + bn.epsilon, 1.0, rtol=1e-7)
    np.testing.assert_array_equal(
        beta, tflite_weights["MobilenetV2/expanded_conv_5/project/folded_bias"])
    np.testing.assert_array_equal(network.get_layer("block_5_project").kernel.numpy(),
                                  tflite_weights["MobilenetV2/expanded_conv_5/project/weights"])


def test_checkpoint_path(tmp_path, tflite_weights, voc_inputs, reference_logits):
    from deeplab_tf.convert import load_reference_network

    values = unfolded_checkpoint_values(tflite_weights)
    # Non-model variables of a training checkpoint are not weights.
    extra = {"global_step": np.int64(30000),
             "MobilenetV2/Conv/weights/Momentum": np.zeros_like(values["MobilenetV2/Conv/weights"])}
    prefix = write_checkpoint(str(tmp_path / "model.ckpt-30000"), {**values, **extra})
    network, options, fmt = load_reference_network(prefix, output_stride=8)
    assert fmt == "checkpoint" and options["depth_multiplier"] == 0.5
    bn = network.get_layer("block_3_expand_BN")
    np.testing.assert_array_equal(bn.moving_variance.numpy(),
                                  values["MobilenetV2/expanded_conv_3/expand/BatchNorm/moving_variance"])
    worst, agreement = max_difference(network, voc_inputs, reference_logits)
    assert worst < 2e-3 and agreement > 0.999, (worst, agreement)
    # Without --output-stride a checkpoint converts at OS16 (the zoo's single-scale figures).
    assert load_reference_network(prefix)[1]["output_stride"] == 16


def test_frozen_graph_path(tmp_path, tflite_weights, voc_inputs, reference_logits):
    from deeplab_tf.convert import load_reference_network

    path = write_frozen_graph(str(tmp_path / "frozen_inference_graph.pb"),
                              unfolded_checkpoint_values(tflite_weights, seed=1))
    network, options, fmt = load_reference_network(path)
    assert fmt == "frozen_graph" and options["output_stride"] == 8  # the zoo exports at OS8
    worst, agreement = max_difference(network, voc_inputs, reference_logits)
    assert worst < 2e-3 and agreement > 0.999, (worst, agreement)


def _error(path, **kwargs):
    from deeplab_tf.convert import load_reference_network

    with pytest.raises(ConfigError) as error:
        load_reference_network(path, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_extra_and_misshaped_variables_are_named(tmp_path, tflite_weights):
    values = unfolded_checkpoint_values(tflite_weights)
    missing = dict(values)
    del missing["MobilenetV2/expanded_conv_3/project/BatchNorm/gamma"]
    message = _error(write_checkpoint(str(tmp_path / "missing"), missing))
    assert "1 missing: MobilenetV2/expanded_conv_3/project/BatchNorm/gamma" in message
    # The full MobileNetV2 checkpoint's classifier layer (layer_19) is not part of DeepLab.
    extra = {**values, "MobilenetV2/Conv_1/weights": np.zeros((1, 1, 160, 1280), np.float32)}
    message = _error(write_checkpoint(str(tmp_path / "extra"), extra))
    assert "1 unused: MobilenetV2/Conv_1/weights" in message
    shaped = {**values, "aspp0/weights": np.zeros((1, 1, 160, 128), np.float32)}
    message = _error(write_checkpoint(str(tmp_path / "shaped"), shaped))
    assert "aspp0/weights (source [1, 1, 160, 128], expected [1, 1, 160, 256])" in message


def test_wrong_class_count(tmp_path, tflite_path):
    message = _error(tflite_path, num_classes=19)
    assert "num_classes=19" in message and "logits/semantic/weights" in message and "21" in message
    from deeplab_tf.convert import convert

    with pytest.raises(ConfigError, match="21 classes but dataset 'cityscapes' has 19"):
        convert(tflite_path, str(tmp_path / "run"), dataset="cityscapes", export=False)


def test_file_of_another_architecture(tmp_path):
    resnet = {"resnet_v1_50/conv1_1/weights": np.zeros((3, 3, 3, 64), np.float32),
              "resnet_v1_50/logits/weights": np.zeros((1, 1, 2048, 1000), np.float32)}
    message = _error(write_checkpoint(str(tmp_path / "resnet"), resnet))
    assert "not a research/deeplab MobileNetV2 or Xception-65 model" in message
    assert "resnet_v1_50/conv1_1/weights" in message
    # Xception-65 names, but only a few of them: the missing weights are named.
    xception = {"xception_65/entry_flow/conv1_1/weights": np.zeros((3, 3, 3, 32), np.float32),
                "logits/semantic/weights": np.zeros((1, 1, 256, 21), np.float32),
                "logits/semantic/biases": np.zeros((21,), np.float32)}
    message = _error(write_checkpoint(str(tmp_path / "xception"), xception))
    assert "missing: " in message
    assert "xception_65/entry_flow/block1/unit_1/xception_module/" in message
    # A TFLite flatbuffer of another network.
    module = tf.Module()
    module.kernel = tf.Variable(tf.ones((3, 3, 3, 8)))
    function = tf.function(lambda x: tf.nn.conv2d(x, module.kernel, 1, "SAME"),
                           input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], module)
    other = tmp_path / "other.tflite"
    other.write_bytes(converter.convert())
    assert "not a research/deeplab MobileNetV2 or Xception-65 model" in _error(str(other))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    assert "not a TFLite flatbuffer" in _error(str(junk))


def test_run_directory_rebuilds_and_serves(tmp_path, tflite_path, voc_inputs, reference_logits):
    """convert -> config.json + weights + SavedModel; load_run rebuilds the same network."""
    from deeplab_tf.convert import main
    from segcore.export import load_serving
    from segcore.training import load_run

    run_dir = str(tmp_path / "mnv2_dm05")
    assert main([tflite_path, "--out", run_dir, "--serving-size", "257", "257"]) == 0
    with open(os.path.join(run_dir, "config.json")) as f:
        document = json.load(f)
    assert document["family"] == "deeplab" and document["model"]["depth_multiplier"] == 0.5
    assert document["resolved"]["source_sha256"].startswith("68a53978")
    config, family, task, num_classes = load_run(run_dir)
    assert num_classes == 21
    worst, _ = max_difference(task.network, voc_inputs, reference_logits)
    assert worst < 1e-3
    # The SavedModel at --serving-size 257: a uint8 257 x 257 image in, class ids out.
    serving = load_serving(os.path.join(run_dir, "saved_model"))
    image = np.asarray(Image.fromarray(((voc_inputs[0][0] + 1) * 127.5).round().astype(np.uint8)))
    outputs = serving.signatures["serving_default"](images=tf.constant(image[None]))
    assert outputs["class_ids"].shape == (1, SIZE, SIZE)
    agreement = np.mean(outputs["class_ids"].numpy()[0] == reference_logits[0][0].argmax(-1))
    assert agreement > 0.99, agreement  # uint8 rounding of the input only


def test_command_line_bad_input_is_one_line(tmp_path, capsys):
    from deeplab_tf.convert import main

    assert main([str(tmp_path / "nothing.tflite"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing.tflite: no such file" in err[0]


def xception_65_variables(num_classes=21):
    """{name: shape} of a research/deeplab Xception-65 DeepLabv3+ checkpoint, from
    `core/xception.py` `xception_65` (entry flow conv1_1 3x3/32 stride 2, conv1_2 3x3/64;
    blocks of `xception_module` units: entry_flow block1-3 [128]*3, [256]*3, [728]*3 with
    a 1x1 `shortcut`; middle_flow block1 16 units [728]*3, sum; exit_flow block1
    [728, 1024, 1024] with shortcut, block2 [1536, 1536, 2048] without; each unit's
    `separable_conv{i}_depthwise` / `_pointwise` with BatchNorm) and `model.py`'s head with
    ASPP (aspp{1,2,3} separable) and the decoder (`decoder/feature_projection0` 48 on the
    256-channel stride-4 tap, `decoder/decoder_conv{0,1}` separable 256)."""
    out = {}

    def conv(scope, kh, cin, cout, depthwise=False):
        if depthwise:
            out[f"{scope}/depthwise_weights"] = (kh, kh, cin, 1)
        else:
            out[f"{scope}/weights"] = (kh, kh, cin, cout)
        for leaf in ("gamma", "beta", "moving_mean", "moving_variance"):
            out[f"{scope}/BatchNorm/{leaf}"] = (cout,)

    def separable(scope, cin, cout):
        conv(f"{scope}_depthwise", 3, cin, cin, depthwise=True)
        conv(f"{scope}_pointwise", 1, cin, cout)

    conv("xception_65/entry_flow/conv1_1", 3, 3, 32)
    conv("xception_65/entry_flow/conv1_2", 3, 32, 64)
    channels = 64
    blocks = [("entry_flow/block1", 1, [128] * 3, True), ("entry_flow/block2", 1, [256] * 3, True),
              ("entry_flow/block3", 1, [728] * 3, True),
              ("middle_flow/block1", 16, [728] * 3, False),
              ("exit_flow/block1", 1, [728, 1024, 1024], True),
              ("exit_flow/block2", 1, [1536, 1536, 2048], False)]
    for block, units, depths, shortcut in blocks:
        for unit in range(1, units + 1):
            scope = f"xception_65/{block}/unit_{unit}/xception_module"
            cin = channels
            for i, depth in enumerate(depths, start=1):
                separable(f"{scope}/separable_conv{i}", channels, depth)
                channels = depth
            if shortcut:
                conv(f"{scope}/shortcut", 1, cin, depths[-1])
    conv("image_pooling", 1, 2048, 256)
    conv("aspp0", 1, 2048, 256)
    for i in (1, 2, 3):
        separable(f"aspp{i}", 2048, 256)
    conv("concat_projection", 1, 1280, 256)
    conv("decoder/feature_projection0", 1, 256, 48)
    separable("decoder/decoder_conv0", 304, 256)
    separable("decoder/decoder_conv1", 256, 256)
    out["logits/semantic/weights"] = (1, 1, 256, num_classes)
    out["logits/semantic/biases"] = (num_classes,)
    return out


def test_xception65_checkpoint_fills_deeplabv3plus_by_the_reference_names(tmp_path):
    from deeplab_tf.convert import load_reference_network, reference_variables

    table = xception_65_variables()
    # A distinct constant per variable: a value in the wrong slot would show.
    values = {name: np.full(shape, i, np.float32) for i, (name, shape) in enumerate(table.items())}
    network, options, _ = load_reference_network(write_checkpoint(str(tmp_path / "x65"), values))
    assert options == {"backbone": "xception65", "output_stride": 16,
                       "atrous_rates": [6, 12, 18], "decoder": True}
    targets = reference_variables(network)
    assert set(targets) == set(table)
    for name in ("xception_65/middle_flow/block1/unit_16/xception_module/"
                 "separable_conv3_pointwise/weights",
                 "xception_65/exit_flow/block1/unit_1/xception_module/shortcut/BatchNorm/"
                 "moving_variance",
                 "decoder/decoder_conv0_depthwise/depthwise_weights",
                 "aspp2_pointwise/BatchNorm/beta"):
        layer, index = targets[name]
        np.testing.assert_array_equal(layer.get_weights()[index], values[name])
