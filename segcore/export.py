"""SavedModel export for TF Serving, versioned model base paths, warm-up requests, TFLite.

    python -m segcore.export RUN_DIR [--version N] [--out BASE] [--precision fp32|mixed] \\
        [--tflite [--tflite-size H W]]

re-exports a finished run (its config.json and checkpoints/final.weights.h5, rebuilt
by `segcore.training.load_run`) as a new version of a TF Serving model base path.

Layout: ``runs/<name>/saved_model/<version>/`` with integer versions (1 for a new
run; a re-export adds the next integer; `--version N` is refused when N exists),
so ``runs/<name>/saved_model`` is a `tensorflow_model_server --model_base_path`
as it is. Each version holds ``assets.extra/tf_serving_warmup_requests``: a
TFRecord of `tensorflow_serving.apis.PredictionLog` records, one representative
request per image signature (TF Serving replays them when it loads the version,
so the first client requests do not pay the graph's initialisation). `--tflite`
also writes ``<base>/tflite/<version>/{float32,dynamic_range}.tflite`` (TF
Serving ignores children of the base path whose names are not integers).

Signatures (preprocessing and inference options are inside the graph; `images`
of any size; C = number of classes; class ids are uint8 when C <= 256, else int32):

=========================  =============================  ==========================================
signature                  input `images`                 outputs
=========================  =============================  ==========================================
serving_default            uint8 [B, H, W, 3]             class_ids [B, H, W], probabilities float32
                                                          [B, H, W, C]
serving_bytes              string [B], PNG/JPEG (REST     the same
                           ``{"b64": ...}``), same size
serving_class_ids          uint8 [B, H, W, 3]             class_ids [B, H, W]
serving_bytes_class_ids    string [B]                     class_ids [B, H, W]
serving_bytes_png          string [B]                     class_ids_png_bytes string [B]: the class
                                                          ids as a palette PNG (mode P, pixel value
                                                          = class id, the dataset's palette; 16-bit
                                                          grey when C > 256)
metadata                   (none)                         see below
=========================  =============================  ==========================================

`probabilities` (C floats per pixel: tens of MB of JSON per frame) only come from
the two signatures that always had them (what `segcore.evaluate` / `segcore.predict`
use, for multi-scale averaging and the CRF). A REST client asks for
`serving_bytes_png` (a few KB per frame: TF Serving base64-encodes outputs whose
name ends in ``_bytes``) or `serving_bytes_class_ids`.

``metadata`` (no input): `num_classes`, `class_names`, `palette` int32 [C, 3],
`ignore_label`, `dtype_policy` (the precision the graph computes in: float32
unless the export asked for mixed), `preprocessing` (in words), `inference_options`
(JSON: DeepLab's eval scales/flip, U-Net's tile size, FCN's network input size),
`family` (fcn/deeplab/unet, "" for a SavedModel not exported from a run).

TFLite (`--tflite`): the run's predict function at one fixed input size
(`--tflite-size`, default the run's training image size) with inputs uint8
[1, H, W, 3] and outputs class_ids uint8 and probabilities float32, converted with
TFLite builtin ops only, float32 and with post-training dynamic-range quantisation
(int8 weights); the weights are frozen into the file (`frozen_function`). Which
families convert (`tflite_support`):

* DeepLabv3+ MobileNetV2 (the mobile model; tested): convolutions, depthwise/atrous
  convolutions, batch norm (folded), bilinear resizes and the multi-scale/flip
  averaging at a fixed size are all builtins. The Xception/ResNet backbones use the
  same kinds of ops (not tested here).
* FCN: does not convert. Its fc6 (7x7x512 -> 4096) is `segcore.layers.PatchConv2D`,
  a convolution computed as `tf.image.extract_patches` + one matrix product (fast
  CPU training); ExtractImagePatches is not a TFLite builtin. (Nor is FCN a phone
  model: VGG-16's 134 M parameters are 537 MB of float32.)
* U-Net with valid padding (the paper's overlap-tile): does not convert. The
  tiled prediction runs its tile batches in a `tf.while_loop` over a
  `TensorArray` (TensorList ops), which TFLite builtins do not have (it would
  need the Select-TF-ops/Flex runtime). A ``padding="same"`` U-Net (no tiling) is
  not refused; whether it converts is not tested.

`tf.saved_model.save` of a small `tf.Module` that tracks the network's variables
once: Keras 3.15's `model.export` writes every variable twice (1.0 GB for
FCN-8s); this writes each once (about 1.0x the parameter bytes).

Written by hand where a library nearly does it: TF has no palette-PNG encoder, so
`serving_bytes_png` encodes the ids as 8-bit grey with `tf.io.encode_png` (the same
pixel data as an 8-bit palette PNG) and rewrites the header in graph ops: colour
type 3, the IHDR CRC-32 recomputed (a 256-entry table), a PLTE chunk inserted.
"""

import argparse
import json
import os
import sys
import zlib

import numpy as np
import tensorflow as tf

from segcore.errors import ConfigError, SegmentationError

PROG = "python -m segcore.export"
IMAGE_SIGNATURES = ("serving_default", "serving_bytes", "serving_class_ids",
                    "serving_bytes_class_ids", "serving_bytes_png")
SIGNATURES = IMAGE_SIGNATURES + ("metadata",)
BYTES_SIGNATURES = ("serving_bytes", "serving_bytes_class_ids", "serving_bytes_png")
PNG_OUTPUT = "class_ids_png_bytes"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_WARMUP_SIZE = (128, 128)
TFLITE_KINDS = ("float32", "dynamic_range")
# Model options that change what a SavedModel computes (recorded in `metadata`).
INFERENCE_KEYS = ("eval_scales", "eval_flip", "tile_size", "tiles_per_pass", "eval_rotations",
                  "padding")


# --------------------------------------------------------------------------- palette PNG, graph ops

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BYTE_STRINGS = [bytes([i]) for i in range(256)]


def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def _be32_bytes(value):
    """int32 scalar tensor -> int64 [4] big-endian bytes."""
    value = tf.cast(value, tf.int64)
    return tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(value, tf.constant([24, 16, 8, 0], tf.int64)), 255)


def _crc32(byte_values):
    """CRC-32 (zlib's) of a static-length int64 vector of byte values, in graph ops."""
    table = tf.constant(_CRC_TABLE, tf.int64)
    crc = tf.constant(0xFFFFFFFF, tf.int64)
    for i in range(byte_values.shape[0]):
        index = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(crc, byte_values[i]), 255)
        crc = tf.bitwise.bitwise_xor(tf.gather(table, index), tf.bitwise.right_shift(crc, 8))
    return tf.bitwise.bitwise_xor(crc, 0xFFFFFFFF)


def _bytes_to_string(byte_values):
    return tf.strings.reduce_join(tf.gather(tf.constant(_BYTE_STRINGS), byte_values))


def _chunk(kind, data):
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def palette_chunk(palette):
    """The PLTE chunk (bytes) of `palette` [C, 3] (C <= 256)."""
    return _chunk(b"PLTE", np.clip(np.asarray(palette), 0, 255).astype(np.uint8).tobytes())


def encode_palette_png(class_ids, plte_chunk):
    """Palette PNG (string scalar) of uint8 class ids [H, W]: 8-bit grey `tf.io.encode_png`
    (IHDR, IDAT..., IEND) with colour type 3 in IHDR, its CRC recomputed, PLTE inserted."""
    grey = tf.io.encode_png(class_ids[..., None])
    shape = tf.shape(class_ids)
    ihdr = tf.concat([tf.constant(list(b"IHDR"), tf.int64), _be32_bytes(shape[1]),
                      _be32_bytes(shape[0]), tf.constant([8, 3, 0, 0, 0], tf.int64)], axis=0)
    header = tf.strings.join([
        tf.constant(_PNG_SIGNATURE + (13).to_bytes(4, "big")),
        _bytes_to_string(ihdr), _bytes_to_string(_be32_bytes(_crc32(ihdr))),
        tf.constant(plte_chunk)])
    # 8 signature bytes + the grey IHDR chunk (4 length + 4 type + 13 data + 4 CRC) = 33.
    return header + tf.strings.substr(grey, 33, tf.strings.length(grey) - 33)


# --------------------------------------------------------------------------- the serving module


def _tf_variable(variable):
    """The tf.Variable of a Keras 3 variable (itself for a tf.Variable).

    Workaround: a tf.Module that tracks Keras 3 variables writes a SavedModel that
    TF2's `tf.saved_model.load` reads but the TF1 session loader (`saved_model_cli
    run`, and TF Serving's C++ SavedModelBundle, the same loader) does not: "Could not
    find variable dense/bias ... does not exist" (tensorflow/tensorflow issue 72963,
    keras-team/keras issues 20095 and 20096, the latter from TF Serving). Tracking the
    tf.Variables inside them writes a SavedModel both read (tests/test_serving.py::
    test_keras_variables_still_break_the_session_loader fails when that changes).
    """
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "value", None)
    return inner if isinstance(inner, tf.Variable) else variable


def class_ids_dtype(num_classes):
    return tf.uint8 if num_classes <= 256 else tf.int32


class ServingModule(tf.Module):
    def __init__(self, predict_fn, variables, num_classes, class_names, palette, ignore_label,
                 dtype_policy="float32", preprocessing="", inference_options=None, family=""):
        super().__init__(name="segmentation_serving")
        if num_classes > 65536:
            raise ConfigError(f"num_classes={num_classes}: at most 65536 classes can be served "
                              "(16-bit PNG class maps)")
        # One traced graph of the network shared by every image signature (traced once,
        # stored once in saved_model.pb).
        self._predict_fn = tf.function(
            predict_fn, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        self.model_variables = [_tf_variable(v) for v in variables]
        self._num_classes = num_classes
        self._ids_dtype = class_ids_dtype(num_classes)
        self._plte = palette_chunk(np.asarray(palette).reshape(-1, 3)[:256]) \
            if num_classes <= 256 else None
        self._metadata = {
            "num_classes": tf.constant(num_classes, tf.int32),
            "class_names": tf.constant(list(class_names), tf.string),
            "palette": tf.constant(np.asarray(palette, np.int32).reshape(-1, 3)),
            "ignore_label": tf.constant(ignore_label, tf.int32),
            "dtype_policy": tf.constant(dtype_policy, tf.string),
            "preprocessing": tf.constant(preprocessing, tf.string),
            "inference_options": tf.constant(json.dumps(inference_options or {}, sort_keys=True),
                                             tf.string),
            "family": tf.constant(family, tf.string),
        }

    def _probabilities(self, images):
        return tf.cast(self._predict_fn(images), tf.float32)

    def _class_ids(self, probabilities):
        return tf.cast(tf.argmax(probabilities, axis=-1, output_type=tf.int32), self._ids_dtype)

    def _png(self, class_ids):
        if self._plte is not None:
            encode = lambda ids: encode_palette_png(ids, self._plte)  # noqa: E731
        else:
            encode = lambda ids: tf.io.encode_png(tf.cast(ids, tf.uint16)[..., None])  # noqa: E731
        return tf.map_fn(encode, class_ids, fn_output_signature=tf.TensorSpec([], tf.string))

    @staticmethod
    def _decode(images):
        return tf.map_fn(
            lambda data: tf.io.decode_image(data, channels=3, expand_animations=False),
            images, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
        )

    def _full(self, images):
        probabilities = self._probabilities(images)
        return {"class_ids": self._class_ids(probabilities), "probabilities": probabilities}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images):
        return self._full(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes(self, images):
        return self._full(self._decode(images))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_class_ids(self, images):
        return {"class_ids": self._class_ids(self._probabilities(images))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes_class_ids(self, images):
        return {"class_ids": self._class_ids(self._probabilities(self._decode(images)))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes_png(self, images):
        class_ids = self._class_ids(self._probabilities(self._decode(images)))
        return {PNG_OUTPUT: self._png(class_ids)}

    @tf.function(input_signature=[])
    def metadata(self):
        return dict(self._metadata)

    def signatures(self):
        return {
            "serving_default": self.serve.get_concrete_function(),
            "serving_bytes": self.serve_bytes.get_concrete_function(),
            "serving_class_ids": self.serve_class_ids.get_concrete_function(),
            "serving_bytes_class_ids": self.serve_bytes_class_ids.get_concrete_function(),
            "serving_bytes_png": self.serve_bytes_png.get_concrete_function(),
            "metadata": self.metadata.get_concrete_function(),
        }


def export_saved_model(path, predict_fn, variables, num_classes, class_names, palette,
                       ignore_label=255, dtype_policy="float32", preprocessing="",
                       inference_options=None, family="", warmup_size=DEFAULT_WARMUP_SIZE):
    """Write a SavedModel serving `predict_fn` (uint8 images -> probabilities) to `path`
    (exactly there: `export_version` picks a version directory of a model base path),
    with warm-up requests of `warmup_size` (H, W) images; see the module docstring."""
    module = ServingModule(predict_fn, variables, num_classes, class_names, palette, ignore_label,
                           dtype_policy, preprocessing, inference_options, family)
    tf.saved_model.save(module, path, signatures=module.signatures())
    write_warmup_requests(path, warmup_size)
    return path


# --------------------------------------------------------------------------- warm-up requests


def warmup_image(size, seed=0):
    """A deterministic uint8 [H, W, 3] scene-like image (smooth colour ramps, edges, noise)."""
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([255 * rows / max(height - 1, 1), 255 * cols / max(width - 1, 1),
                      127.5 + 100 * np.sin(rows / 7.0) * np.cos(cols / 11.0)], axis=-1)
    image[(rows > height / 2) & (cols > width / 3)] = (128, 64, 128)
    image += np.random.default_rng(seed).normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _png_bytes(image):
    return tf.io.encode_png(image).numpy()


def warmup_requests(size):
    """[(signature, PredictRequest)]: one request per image signature on `warmup_image(size)`."""
    from tensorflow_serving.apis import predict_pb2

    image = warmup_image(size)
    requests = []
    for name in IMAGE_SIGNATURES:
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = name
        value = np.array([_png_bytes(image)], dtype=object) if name in BYTES_SIGNATURES \
            else image[None]
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(value))
        requests.append((name, request))
    return requests


def write_warmup_requests(path, size=DEFAULT_WARMUP_SIZE):
    """Write `path`/assets.extra/tf_serving_warmup_requests (TFRecord of PredictionLog)."""
    from tensorflow_serving.apis import prediction_log_pb2

    target = os.path.join(path, WARMUP_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tf.io.TFRecordWriter(target) as writer:
        for _, request in warmup_requests(tuple(size)):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return target


def read_warmup_requests(path):
    """[PredictionLog] of the warm-up file of SavedModel directory `path`."""
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


# --------------------------------------------------------------------------- versions


def is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def list_versions(base):
    """Sorted integer versions (child directories named by an integer) of model base path `base`."""
    if not os.path.isdir(base):
        return []
    return sorted(int(name) for name in os.listdir(base)
                  if name.isdigit() and os.path.isdir(os.path.join(base, name)))


def parse_version(value):
    """A positive int of `--version` text (ConfigError otherwise)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--version must be a positive integer (a TF Serving version "
                          f"directory); got {value!r}")
    return int(text)


def version_dir(base, version=None):
    """The directory of a new version of model base path `base`: `version`, or the next
    integer after the existing versions (1 for none). ConfigError when it exists or when
    `base` is itself a SavedModel (unversioned, not a model base path)."""
    if is_saved_model(base):
        raise ConfigError(f"{base}: is itself a SavedModel (unversioned, not a model base path "
                          "with version directories); export with --out to another model base "
                          "path")
    if os.path.exists(base) and not os.path.isdir(base):
        raise ConfigError(f"--out {base}: exists and is not a directory")
    existing = list_versions(base)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    version = parse_version(version)
    path = os.path.join(base, str(version))
    if os.path.exists(path):
        raise ConfigError(f"--version {version}: {path} exists (versions "
                          f"{', '.join(map(str, existing))}); omit --version for the next "
                          f"({existing[-1] + 1})")
    return path


def find_saved_model(path):
    """The SavedModel directory `path` names, or None: `path` itself; the highest version of a
    model base path; `path/saved_model` (a run directory: unversioned, or its highest version)."""
    for candidate in (path, os.path.join(path, "saved_model")):
        if is_saved_model(candidate):
            return candidate
        versions = [v for v in list_versions(candidate)
                    if is_saved_model(os.path.join(candidate, str(v)))]
        if versions:
            return os.path.join(candidate, str(versions[-1]))
    return None


def saved_model_bytes(path):
    """Total size of the files of a SavedModel directory."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def load_serving(path):
    """Load a SavedModel and check it has this package's signatures."""
    if not os.path.isdir(path) or not is_saved_model(path):
        raise SegmentationError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    loaded = tf.saved_model.load(path)
    missing = [s for s in ("serving_default",) if s not in loaded.signatures]
    if missing:
        raise SegmentationError(
            f"{path}: SavedModel has no signature {', '.join(missing)} "
            f"(found {', '.join(loaded.signatures) or 'none'}); expected one exported by "
            "segcore.export"
        )
    return loaded


# --------------------------------------------------------------------------- a run's export


def inference_options(config, family):
    """The model options that change what the run's SavedModel computes (for `metadata`)."""
    if family.make_predict_fn is None:
        return {"network_input_size": list(config.image_size) if config.image_size else None}
    import importlib

    from segcore.families import FAMILY_MODULES

    module = importlib.import_module(FAMILY_MODULES[family.name])
    options, extra = module.split_options(config.model)
    merged = {**options, **extra}
    found = {key: merged[key] for key in INFERENCE_KEYS if key in merged}
    if family.name == "unet":
        found.setdefault("padding", "valid")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in found.items()}


def preprocessing_words(config, family):
    """The run's preprocessing and inference in words (for `metadata`)."""
    doc = (family.preprocess.__doc__ or "").strip().split("\n")[0].rstrip(".")
    words = f"uint8 RGB images of any size; {family.name} preprocessing: {doc}"
    options = inference_options(config, family)
    if family.make_predict_fn is None:
        size = options["network_input_size"]
        words += (f"; resized (bilinear) to {size[0]}x{size[1]} for the network, probabilities "
                  "resized back (bilinear) to the image" if size else "; at the image's own size")
    elif family.name == "deeplab":
        words += (f"; softmax averaged over scales {options['eval_scales']}"
                  + (" and left-right flips" if options["eval_flip"] else "")
                  + " at the image's size")
    elif family.name == "unet" and options.get("padding") == "valid":
        words += (f"; overlap-tile prediction with {options['tile_size']}-pixel input tiles, "
                  "borders mirrored")
    return words + "; class ids = argmax of the probabilities"


def export_version(base, config, family, predict_fn, variables, num_classes, info,
                   dtype_policy="float32", version=None):
    """Write a run's SavedModel as version `version` (None: the next) of model base path `base`;
    returns the version directory."""
    path = version_dir(base, version)
    export_saved_model(path, predict_fn, variables, num_classes, info.class_names, info.palette,
                       info.ignore_label, dtype_policy=dtype_policy,
                       preprocessing=preprocessing_words(config, family),
                       inference_options=inference_options(config, family), family=family.name,
                       warmup_size=tuple(config.image_size) if config.image_size
                       else DEFAULT_WARMUP_SIZE)
    return path


# --------------------------------------------------------------------------- TFLite


def tflite_support(config, family):
    """None when `family`'s network for `config` converts to TFLite builtins, else the reason."""
    if family.name == "fcn":
        return ("FCN's fc6 is a PatchConv2D (tf.image.extract_patches + a matrix product); "
                "ExtractImagePatches is not a TFLite builtin op")
    if family.name == "unet" and config.model.get("padding", "valid") == "valid":
        return ("the U-Net's overlap-tile prediction runs its tiles in a tf.while_loop over a "
                "TensorArray (TensorList ops), which TFLite builtin ops do not have")
    return None


def tflite_function(predict_fn, size):
    @tf.function(input_signature=[tf.TensorSpec([1, *size, 3], tf.uint8, name="images")])
    def serve(images):
        probabilities = tf.cast(predict_fn(images), tf.float32)
        return {"class_ids": tf.cast(tf.argmax(probabilities, axis=-1, output_type=tf.int32),
                                     tf.uint8),
                "probabilities": probabilities}

    return serve


def frozen_function(function):
    """`function` with its variables replaced by constants.

    Workaround: TF 2.21's converter keeps the Keras 3 network's variables as resource
    variables (READ_VARIABLE ops) whose values it does not store: the .tflite file has
    no weights and the interpreter returns NaN (XNNPACK) or fails "variable != nullptr"
    (tensorflow/tensorflow issue 98964). Freezing first (every variable read replaced
    by a constant holding its value) embeds the weights. Checked by
    tests/test_serving.py::test_tflite_converter_still_drops_unfrozen_keras_weights.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(function)


def export_tflite(directory, predict_fn, size, what="the network"):
    """Write `directory`/float32.tflite and dynamic_range.tflite of `predict_fn` at input
    size `size` (H, W); returns {kind: path}. ConfigError (one line) if conversion fails."""
    function = frozen_function(tflite_function(predict_fn, tuple(size)).get_concrete_function())
    os.makedirs(directory, exist_ok=True)
    written = {}
    for kind in TFLITE_KINDS:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
        if kind == "dynamic_range":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no dataset: dynamic range
        try:
            data = converter.convert()
        except Exception as error:  # the converter raises many types
            lines = [line for line in str(error).splitlines() if "error:" in line] \
                or str(error).splitlines() or [type(error).__name__]
            raise ConfigError(f"--tflite: {what} does not convert to TFLite builtin ops "
                              f"({lines[0].strip()[:300]})") from None
        written[kind] = os.path.join(directory, f"{kind}.tflite")
        with open(written[kind], "wb") as f:
            f.write(data)
    return written


# --------------------------------------------------------------------------- command line


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a finished run directory (config.json, checkpoints/final.weights.h5)")
    parser.add_argument("--version", default=None,
                        help="integer version directory (default: the next one, 1 for none)")
    parser.add_argument("--out", default=None,
                        help="TF Serving model base path (default: RUN_DIR/saved_model)")
    parser.add_argument("--precision", choices=("fp32", "mixed"), default=None,
                        help="dtype policy of the exported graph (default: the run's "
                             "export_precision)")
    parser.add_argument("--tflite", action="store_true",
                        help="also write BASE/tflite/VERSION/{float32,dynamic_range}.tflite")
    parser.add_argument("--tflite-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="TFLite input size (default: the run's training image size)")
    return parser


def export_run(run_dir, version=None, out=None, precision=None, tflite=False, tflite_size=None,
               echo=print):
    """Re-export finished run `run_dir` (see the module docstring); returns
    (version directory, {tflite kind: path})."""
    from segcore import data as datasets
    from segcore.families import get_family
    from segcore.precision import resolve_export_policy
    from segcore.training import inference_predict_fn, load_run

    if version is not None:
        version = parse_version(version)
    if tflite_size is not None and (len(tflite_size) != 2 or min(tflite_size) < 1):
        raise ConfigError(f"--tflite-size must be two positive integers; got {tflite_size}")
    base = out or os.path.join(run_dir, "saved_model")
    target = version_dir(base, version)       # refused before the network is built
    recorded = _recorded_config(run_dir)      # None: load_run names what is missing
    if tflite and recorded is not None:
        reason = tflite_support(recorded, get_family(recorded.family))
        if reason:
            raise ConfigError(f"--tflite: {run_dir} is a {recorded.family} network, which does "
                              f"not convert: {reason}")
    precision = precision or (recorded.export_precision if recorded is not None else "fp32")
    config, family, task, num_classes = load_run(run_dir, precision)
    policy = resolve_export_policy(precision)
    info = datasets.info(config.dataset)
    predict_fn = inference_predict_fn(family, task, config)
    path = export_version(base, config, family, predict_fn, task.network.variables, num_classes,
                          info, dtype_policy=policy, version=int(os.path.basename(target)))
    echo(f"wrote {path} ({saved_model_bytes(path) / 1e6:.1f} MB, dtype policy {policy})")
    written = {}
    if tflite:
        size = tuple(tflite_size or config.image_size or (513, 513))
        written = export_tflite(os.path.join(base, "tflite", os.path.basename(path)), predict_fn,
                                size, what=f"the {family.name} network of {run_dir}")
        for kind, file in written.items():
            echo(f"wrote {file} ({os.path.getsize(file) / 1e6:.2f} MB, {kind}, input "
                 f"uint8 [1, {size[0]}, {size[1]}, 3])")
    return path, written


def _recorded_config(run_dir):
    """The TrainConfig of `run_dir`/config.json, or None when it is missing or unreadable."""
    from segcore.training import config_from_document

    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            return config_from_document(json.load(f))
    except (OSError, ValueError, SegmentationError, TypeError):
        return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        export_run(args.run_dir, args.version, args.out, args.precision, args.tflite,
                   args.tflite_size)
    except SegmentationError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
