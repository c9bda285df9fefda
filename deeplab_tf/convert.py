"""Published research/deeplab weights -> a run directory of this package.

    python -m deeplab_tf.convert deeplabv3_257_mv_gpu.tflite --out runs/mnv2_dm05_voc
    python -m deeplab_tf.convert model.ckpt --out runs/mnv2_voc --output-stride 16
    python -m deeplab_tf.convert frozen_inference_graph.pb --out runs/xception65_voc
    python -m segcore.evaluate --model runs/mnv2_dm05_voc --dataset voc2012 --data-dir DIR \\
        --split val

The run directory is the one a training run leaves (`segcore.training`):
config.json (family "deeplab", the `build_deeplabv3plus` options), the
network's weights in checkpoints/final.weights.h5 and a SavedModel in
saved_model/, so `segcore.training.load_run` rebuilds it and
`segcore.evaluate` and TF Serving use it unchanged.

Sources, all read by the reference's own variable names (research/deeplab
`model.py` scopes, TF-slim `nets/mobilenet` and deeplab `core/xception.py`):

* a research/deeplab checkpoint (`model.ckpt-N` prefix or its directory), read
  with `tf.train.load_checkpoint`; `global_step` and optimiser slots (names
  ending in `/Momentum`, `/Adam`, `/Adam_1`, `/ExponentialMovingAverage`) are
  not model variables and are not read;
* a frozen graph (`frozen_inference_graph.pb`): its Const nodes whose last name
  component is a variable's (`weights`, `biases`, `depthwise_weights`, `gamma`,
  `beta`, `moving_mean`, `moving_variance`); other constants (sizes, the
  preprocessing's 127.5) are not weights;
* a TFLite flatbuffer of the reference model (the TFLite demo's
  `deeplabv3_257_mv_gpu.tflite`), read with `tf.lite.Interpreter`: tensors
  named `<scope>/weights` ([out, kh, kw, in], transposed to [kh, kw, in, out]),
  `<scope>/depthwise_weights` ([1, kh, kw, C] -> [kh, kw, C, 1]) and their
  folded biases `<scope>/Conv2D_bias`, `<scope>/depthwise_bias`.

The TFLite converter folded each batch norm into its convolution (kernel scaled
by gamma / sqrt(var + eps), bias beta - mean * that). The folded kernel goes
into the convolution and the folded bias into the BatchNormalization layer that
follows it, set to the identity: gamma 1, moving mean 0, moving variance
1 - epsilon (so sqrt(var + eps) = 1), beta = the folded bias. Why not a
convolution with a bias and no BN: the builder's convolutions have no bias and
each is followed by BN, as in the reference, so an identity BN keeps one
network for the three sources: the same config.json rebuilds it, the same
weight names load into it, and it can be fine-tuned like a checkpoint
conversion (the original BN statistics are lost in the TFLite file; fine-tune
it with `freeze_batch_norm=True`). The cost is one multiply-add per channel.

Matching: every weight of the target network is filled from exactly one source
variable, every source variable is used exactly once, shapes are checked; a
missing, unused or mis-shaped variable is a ConfigError of one line naming the
variables. The architecture is read from the source: the backbone from the
variable prefixes (`MobilenetV2/`, `xception_65/`), the MobileNetV2
`depth_multiplier` from the last projection's channels (320 x multiplier), the
decoder from `decoder/...`, the atrous ASPP branches from `aspp1_...`, the class
count from `logits/semantic/weights`. The output stride is not stored in
weights: from a TFLite file it is read off its activation shapes (the demo file
is OS8); for checkpoints it defaults to 16 (the model zoo's single-scale val
figures) and for frozen graphs to 8 (the model zoo exports them at OS8).

Measured with the published `deeplabv3_257_mv_gpu.tflite` (MobileNetV2, depth
multiplier 0.5, OS8) on the 330 VOC 2012 images of ../shared/datasets at
257 x 257: the converted network's logits differ from the TFLite interpreter's
by at most 1.9e-4 (logits up to 49), and the class ids agree on all but 15 of
21.8 M pixels (tests/test_deeplab_convert.py checks 3 images).

ResNet backbones are not converted: the reference's `resnet_v1_*_beta` (three
3x3 stem convolutions) is not the keras.applications ResNet built here.
"""

import argparse
import hashlib
import json
import logging
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.model import ATROUS_RATES, build_deeplabv3plus
from segcore import data as datasets
from segcore.errors import ConfigError
from segcore.export import export_saved_model
from segcore.precision import dtype_policy
from segcore.training import TrainConfig, _write_config

log = logging.getLogger("deeplab_tf.convert")

PROG = "python -m deeplab_tf.convert"
BATCH_NORM_LEAVES = ("gamma", "beta", "moving_mean", "moving_variance")
VARIABLE_LEAVES = ("weights", "biases", "depthwise_weights") + BATCH_NORM_LEAVES
NON_MODEL_SUFFIXES = ("/Momentum", "/Adam", "/Adam_1", "/ExponentialMovingAverage")
NON_MODEL_NAMES = ("global_step",)
TFLITE_BIAS_SUFFIXES = ("/Conv2D_bias", "/depthwise_bias", "/biases")
HEAD_DECODER_LAYERS = ("feature_projection0", "decoder_conv0", "decoder_conv1")
SHOWN_NAMES = 10


# --------------------------------------------------------------------------- names

def reference_scope(layer_name):
    """research/deeplab variable scope of a layer of `build_deeplabv3plus` (MobileNetV2,
    Xception-65 and the head); None for a layer this module cannot name."""
    bn = ""
    for suffix in ("_BN", "_bn"):
        if layer_name.endswith(suffix):
            layer_name, bn = layer_name[: -len(suffix)], "/BatchNorm"
    if layer_name == "bn_Conv1":
        return "MobilenetV2/Conv/BatchNorm"
    if layer_name == "Conv1":
        return "MobilenetV2/Conv" + bn
    match = re.fullmatch(r"expanded_conv_(depthwise|project)", layer_name)
    if match:
        return f"MobilenetV2/expanded_conv/{match.group(1)}{bn}"
    match = re.fullmatch(r"block_(\d+)_(expand|depthwise|project)", layer_name)
    if match:
        return f"MobilenetV2/expanded_conv_{match.group(1)}/{match.group(2)}{bn}"
    match = re.fullmatch(r"(entry_flow|middle_flow|exit_flow)_block(\d+)_unit_(\d+)_(.+)",
                         layer_name)
    if match:
        flow, block, unit, rest = match.groups()
        return f"xception_65/{flow}/block{block}/unit_{unit}/xception_module/{rest}{bn}"
    match = re.fullmatch(r"entry_flow_(conv1_[12])", layer_name)
    if match:
        return f"xception_65/entry_flow/{match.group(1)}{bn}"
    if layer_name == "logits":
        return "logits/semantic"
    if layer_name.startswith(HEAD_DECODER_LAYERS):
        return f"decoder/{layer_name}{bn}"
    if re.fullmatch(r"image_pooling|aspp\d(_depthwise|_pointwise)?|concat_projection", layer_name):
        return layer_name + bn
    return None


def reference_variables(network):
    """{reference variable name: (layer, weight index)} for every weight of `network`,
    in the reference's layout ([kh, kw, in, out] kernels, [kh, kw, C, 1] depthwise)."""
    names = {}
    for layer in network.layers:
        if not layer.weights:
            continue
        scope = reference_scope(layer.name)
        if scope is None:
            raise ConfigError(f"layer {layer.name!r} of {network.name} has no research/deeplab "
                              "variable name (only MobileNetV2 and Xception-65 models convert)")
        if isinstance(layer, keras.layers.BatchNormalization):
            leaves = BATCH_NORM_LEAVES
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            leaves = ("depthwise_weights",)
        elif isinstance(layer, keras.layers.Conv2D):
            leaves = ("weights", "biases")[: len(layer.weights)]
        else:
            raise ConfigError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no reference name")
        for index, leaf in enumerate(leaves):
            names[f"{scope}/{leaf}"] = (layer, index)
    return names


# --------------------------------------------------------------------------- sources

def source_format(path):
    """"tflite", "frozen_graph" or "checkpoint" of `path` (ConfigError if none)."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            head = f.read(8)
        if head[4:8] == b"TFL3":
            return "tflite"
        if path.endswith(".pb"):
            return "frozen_graph"
    try:
        tf.train.load_checkpoint(path)
        return "checkpoint"
    except (ValueError, tf.errors.OpError):
        pass
    raise ConfigError(f"{path}: not a TFLite flatbuffer, a frozen graph (.pb) or a TensorFlow "
                      "checkpoint (model.ckpt-N prefix or its directory)")


def read_checkpoint(path):
    """{name: array} of the model variables of a research/deeplab checkpoint."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in sorted(reader.get_variable_to_shape_map())
            if name not in NON_MODEL_NAMES and not name.endswith(NON_MODEL_SUFFIXES)}


def read_frozen_graph(path):
    """{name: array} of the Const nodes of a frozen graph named like variables."""
    graph = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as f:
            graph.ParseFromString(f.read())
    except Exception as error:  # protobuf's DecodeError has no common base with OSError
        raise ConfigError(f"{path}: not a readable GraphDef ({type(error).__name__})") from None
    values = {}
    for node in graph.node:
        if node.op == "Const" and node.name.rsplit("/", 1)[-1] in VARIABLE_LEAVES:
            values[node.name] = tf.make_ndarray(node.attr["value"].tensor)
    return values


def _tflite_interpreter(path):
    try:
        interpreter = tf.lite.Interpreter(model_path=path)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ConfigError(f"{path}: not a readable TFLite model ({str(error).splitlines()[0]})") \
            from None
    return interpreter


def read_tflite(path):
    """({name: array} in the reference's layout with folded batch norm split as
    kernel + identity-BN values, the TFLite input/activation shapes {name: shape}).

    Kernels keep their names; a folded bias `<scope>/Conv2D_bias` or
    `<scope>/depthwise_bias` becomes `<scope>/folded_bias` (placed by `_unfold`)."""
    interpreter = _tflite_interpreter(path)
    values, shapes = {}, {}
    for detail in interpreter.get_tensor_details():
        name, shape = detail["name"], tuple(detail["shape"].tolist())
        shapes[name] = shape
        if name.endswith(("/weights", "/depthwise_weights")) and len(shape) == 4:
            # [out, kh, kw, in] -> [kh, kw, in, out]; depthwise [1, kh, kw, C] -> [kh, kw, C, 1]
            values[name] = np.transpose(interpreter.get_tensor(detail["index"]), (1, 2, 3, 0))
        elif name.endswith(TFLITE_BIAS_SUFFIXES):
            scope = name.rsplit("/", 1)[0]
            values[f"{scope}/folded_bias"] = interpreter.get_tensor(detail["index"])
    input_detail = interpreter.get_input_details()[0]
    return values, shapes, tuple(input_detail["shape"].tolist())


def _unfold(values, targets):
    """Folded TFLite values -> reference names: a folded bias goes to the target's
    `<scope>/biases` if the convolution has one (logits), else to the identity batch
    norm after it (`<scope>/BatchNorm/*`); unmatched folded biases stay as they are."""
    out = {k: v for k, v in values.items() if not k.endswith("/folded_bias")}
    for name, bias in values.items():
        if not name.endswith("/folded_bias"):
            continue
        scope = name[: -len("/folded_bias")]
        if f"{scope}/biases" in targets:
            out[f"{scope}/biases"] = bias
        elif f"{scope}/BatchNorm/beta" in targets:
            layer = targets[f"{scope}/BatchNorm/beta"][0]
            out[f"{scope}/BatchNorm/gamma"] = np.ones_like(bias)
            out[f"{scope}/BatchNorm/beta"] = bias
            out[f"{scope}/BatchNorm/moving_mean"] = np.zeros_like(bias)
            out[f"{scope}/BatchNorm/moving_variance"] = np.full_like(bias, 1.0 - layer.epsilon)
        else:
            out[name] = bias
    return out


# --------------------------------------------------------------------------- architecture

def _names(names):
    names = list(names)
    if not names:
        return "none"
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" (and {len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else "")


def infer_options(values, path, fmt, num_classes=None, output_stride=None, tflite_shapes=None,
                  tflite_input=None):
    """(num_classes, build_deeplabv3plus options) of the reference-named `values`."""
    if any(k.startswith("MobilenetV2/") for k in values):
        backbone = "mobilenetv2"
    elif any(k.startswith("xception_65/") for k in values):
        backbone = "xception65"
    else:
        raise ConfigError(f"{path}: not a research/deeplab MobileNetV2 or Xception-65 model: no "
                          f"MobilenetV2/... or xception_65/... weights (found {_names(values)})")
    logits = values.get("logits/semantic/weights")
    if logits is None or logits.ndim != 4:
        raise ConfigError(f"{path}: no logits/semantic/weights [1, 1, C, classes] (found "
                          f"{_names(k for k in values if k.startswith('logits'))})")
    classes = int(logits.shape[-1])
    if num_classes is not None and num_classes != classes:
        raise ConfigError(f"num_classes={num_classes} but {path} has {classes} classes "
                          f"(logits/semantic/weights of shape {list(logits.shape)})")
    options = {"backbone": backbone}
    if backbone == "mobilenetv2":
        last = values.get("MobilenetV2/expanded_conv_16/project/weights")
        if last is None:
            raise ConfigError(f"{path}: no MobilenetV2/expanded_conv_16/project/weights (the "
                              "reference's MobileNetV2 ends at layer_18, expanded_conv_16)")
        options["depth_multiplier"] = float(last.shape[-1]) / 320.0
    separable = "aspp1_depthwise/depthwise_weights" in values or \
        "decoder/decoder_conv0_depthwise/depthwise_weights" in values
    atrous = "aspp1_depthwise/depthwise_weights" in values or "aspp1/weights" in values
    if not separable and ("aspp1/weights" in values or "decoder/decoder_conv0/weights" in values):
        options["separable"] = False
    if output_stride is None and fmt == "tflite":
        output_stride = _tflite_output_stride(tflite_shapes, tflite_input, path)
    elif output_stride is None:
        output_stride = 8 if fmt == "frozen_graph" else 16
    options["output_stride"] = output_stride
    if output_stride not in ATROUS_RATES:
        raise ConfigError(f"output_stride must be 8 or 16; got {output_stride!r}")
    options["atrous_rates"] = list(ATROUS_RATES[output_stride]) if atrous else []
    options["decoder"] = "decoder/feature_projection0/weights" in values
    return classes, options


def _tflite_output_stride(shapes, input_shape, path):
    """(input size - 1) / (encoder output size - 1): the smallest backbone activation."""
    inputs = [s for n, s in shapes.items() if n.startswith(("MobilenetV2/", "xception_65/"))
              and len(s) == 4 and not n.endswith("weights")]
    if not inputs or len(input_shape) != 4:
        raise ConfigError(f"{path}: cannot read the output stride off the TFLite shapes; "
                          "give --output-stride")
    size, smallest = input_shape[1], min(s[1] for s in inputs)
    if smallest < 2 or (size - 1) % (smallest - 1):
        raise ConfigError(f"{path}: input {size} and encoder output {smallest} give no integer "
                          "output stride; give --output-stride")
    return (size - 1) // (smallest - 1)


# --------------------------------------------------------------------------- filling

def fill_network(network, values, path):
    """Set every weight of `network` from the reference-named `values`; every value used
    once, shapes checked; ConfigError (one line, naming the variables) otherwise."""
    targets = reference_variables(network)
    # In network order (missing) and source order (unused): the first names say where.
    missing = [name for name in targets if name not in values]
    unused = [name for name in values if name not in targets]

    def expected(name):
        layer, index = targets[name]
        return tuple(layer.weights[index].shape)

    mismatched = [f"{name} (source {list(values[name].shape)}, expected {list(expected(name))})"
                  for name in targets if name in values
                  and tuple(values[name].shape) != expected(name)]
    if missing or unused or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_names(missing)}")
        if unused:
            parts.append(f"{len(unused)} unused: {_names(unused)}")
        if mismatched:
            parts.append(f"{len(mismatched)} of another shape: {_names(mismatched)}")
        raise ConfigError(f"{path} does not match {network.name} "
                          f"({len(targets)} weights): " + "; ".join(parts))
    for layer in {id(layer): layer for layer, _ in targets.values()}.values():
        current = layer.get_weights()
        for name, (owner, index) in targets.items():
            if owner is layer:
                current[index] = np.asarray(values[name], current[index].dtype)
        layer.set_weights(current)
    return len(targets)


def load_reference_network(path, num_classes=None, output_stride=None):
    """(network, build options, source format): the published model at `path` in
    `build_deeplabv3plus`, every weight filled from the source."""
    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise ConfigError(
            f"{path}: no such file (expected a .tflite, a frozen .pb or a checkpoint)")
    fmt = source_format(path)
    shapes = input_shape = None
    if fmt == "tflite":
        values, shapes, input_shape = read_tflite(path)
    elif fmt == "frozen_graph":
        values = read_frozen_graph(path)
    else:
        values = read_checkpoint(path)
    classes, options = infer_options(values, path, fmt, num_classes, output_stride, shapes,
                                     input_shape)
    with dtype_policy("float32"):  # the published float32 weights, whatever the global policy
        network = build_deeplabv3plus(num_classes=classes, **options)
    if fmt == "tflite":
        values = _unfold(values, reference_variables(network))
    count = fill_network(network, values, path)
    log.info("%s (%s): %d weights into %s", path, fmt, count, network.name)
    return network, options, fmt


# --------------------------------------------------------------------------- run directory

def _sha256(path):
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def serving_predict_fn(network, serving_size=None):
    """uint8 images [B, H, W, 3] -> probabilities [B, H, W, K] at the image's size.

    serving_size None: the network runs on the image as it is (as a training run's
    evaluation). (h, w): every image is resized to h x w first (bilinear,
    align_corners=True, as research/deeplab resizes), e.g. the TFLite demo's 257 x 257,
    and the probabilities are resized back to the image (bilinear, align_corners)."""
    from deeplab_tf.train import preprocess

    def predict(images):
        size = tf.shape(images)[1:3]
        x = preprocess(images)
        if serving_size is not None:
            x = tf.raw_ops.ResizeBilinear(images=x, size=list(serving_size), align_corners=True)
        logits = tf.cast(network(x, training=False), tf.float32)
        logits = tf.raw_ops.ResizeBilinear(images=logits, size=size, align_corners=True)
        return tf.nn.softmax(logits, axis=-1)

    return predict


def convert(source, out, num_classes=None, output_stride=None, dataset="voc2012",
            serving_size=None, export=True):
    """Make run directory `out` from published weights at `source`; return its path.

    Writes config.json (family "deeplab", the builder options, the source and its sha256
    under "resolved"), checkpoints/final.weights.h5 and (with `export`) saved_model/."""
    info = datasets.info(dataset)
    if serving_size is not None:
        serving_size = tuple(int(s) for s in serving_size)
        if len(serving_size) != 2 or min(serving_size) < 2:
            raise ConfigError(f"--serving-size must be two sizes >= 2; got {serving_size!r}")
    network, options, fmt = load_reference_network(source, num_classes, output_stride)
    classes = network.output_shape[-1]
    if classes != info.num_classes:
        raise ConfigError(f"{source} has {classes} classes but dataset {dataset!r} has "
                          f"{info.num_classes}; give --dataset of {classes} classes")
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
    config = TrainConfig(
        name=os.path.basename(os.path.normpath(out)), family="deeplab",
        target=f"converted from {os.path.basename(os.fspath(source))} ({fmt}): the reference's "
               "own predictions (see deeplab_tf.presets for the model zoo's VOC val figures)",
        model=dict(options), dataset=dataset, image_size=None, epochs=0, weights="none",
        precision="fp32",
    )
    resolved = {"num_classes": int(classes), "dtype_policy": "float32",
                "export_dtype_policy": "float32", "converted_from": os.path.abspath(source),
                "source_format": fmt, "source_sha256": _sha256(os.fspath(source)),
                "weights_used": f"{fmt} {os.path.abspath(source)}",
                "serving_size": list(serving_size) if serving_size else None}
    _write_config(out, config, resolved)
    network.save_weights(os.path.join(out, "checkpoints", "final.weights.h5"))
    if export:
        export_saved_model(os.path.join(out, "saved_model"),
                           serving_predict_fn(network, serving_size), network.variables,
                           classes, info.class_names, info.palette, info.ignore_label,
                           dtype_policy="float32")
    return out


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a .tflite file, a frozen_inference_graph.pb or a "
                        "checkpoint (model.ckpt-N prefix or directory)")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="expected class count (checked against the logits)")
    parser.add_argument("--output-stride", type=int, default=None, choices=(8, 16),
                        help="default: TFLite's own; 16 for checkpoints, 8 for frozen graphs")
    parser.add_argument("--dataset", default="voc2012", help="class names and palette (voc2012)")
    parser.add_argument("--serving-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="SavedModel resizes every image to H x W first (TFLite demo: 257 257)")
    parser.add_argument("--no-export", action="store_true", help="write no SavedModel")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from segcore.cli import exit_status

    def run():
        out = convert(args.source, args.out, args.num_classes, args.output_stride, args.dataset,
                      args.serving_size, not args.no_export)
        with open(os.path.join(out, "config.json")) as f:
            print(f"{out}: {json.dumps(json.load(f)['model'])}")
        return 0

    return exit_status(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
