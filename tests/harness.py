"""The checks every custom layer and every network of the package goes through, after
keras-hub's `TestCase.run_layer_test` / `run_model_saving_test`.

`run_layer_test(layer_cls, init_kwargs, input_shapes, tmp_path, expected=None)`:
  * each input shape (odd sizes included) gives an output of the shape the layer's
    `compute_output_shape` promises, equal to `expected(inputs, layer)` when given;
  * `get_config` -> `from_config` gives the same config, and the rebuilt layer with
    the same weights the same outputs;
  * a functional model around the layer survives a `.keras` save and load, outputs equal;
  * under mixed_bfloat16 the layer computes in bfloat16 and agrees with float32 within
    bfloat16's precision, and with `dtype="float32"` (how the networks make their
    logits float32) its outputs are float32.

`run_model_test(network, input_shapes, output_shape, tmp_path, parameters=None)`:
  * the network's output shape at each (odd) input shape;
  * a SavedModel written by `network.export` and reloaded in plain TensorFlow gives the
    Keras outputs within float tolerance;
  * the trainable parameter count, when `parameters` is given (the paper's).

And the helpers several test modules share: `pretend_machine` (the precision a machine
resolves to), `one_line_error` / `exit_error` (a command's one-line error), `read_all` (a
dataset read with DataError for bad files), `h5_arrays` (every array of a Keras weights
file), `LocalHTTPServer` (downloads from 127.0.0.1), `run_trainer` (a trainer's command line
in a fresh process).
"""

import http.server
import subprocess
import sys
import threading

import h5py
import keras
import numpy as np
import tensorflow as tf

from segcore.data import images
from segcore.precision import dtype_policy

COVERED = set()  # the layer classes run_layer_test has checked in this process


def _random_inputs(input_shape, seed):
    rng = np.random.default_rng(seed)
    if isinstance(input_shape, list):
        return [rng.normal(size=shape).astype("float32") for shape in input_shape]
    return rng.normal(size=input_shape).astype("float32")


def _symbolic_inputs(input_shape):
    """keras.Input(s) of the sample's rank and channels, spatial sizes left free."""
    def one(shape):
        return keras.Input((None,) * (len(shape) - 2) + (shape[-1],))
    if isinstance(input_shape, list):
        return [one(shape) for shape in input_shape]
    return one(input_shape)


def _assert_same(actual, expected, what, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float32), np.asarray(expected, np.float32),
                               rtol=rtol, atol=atol, err_msg=what)


def _channels(input_shape):
    return [s[-1] for s in input_shape] if isinstance(input_shape, list) else input_shape[-1]


def _shape_of(input_shape):
    return [tuple(s) for s in input_shape] if isinstance(input_shape, list) else tuple(input_shape)


def run_layer_test(layer_cls, init_kwargs, input_shapes, tmp_path, expected=None,
                   bfloat16_tolerance=0.05):
    """The checks of the module docstring for `layer_cls(**init_kwargs)`.

    input_shapes: a list of sample input shapes (each a tuple, or a list of tuples for a
    layer of several inputs), odd sizes among them. expected: a function of the numpy
    inputs and the layer (its weights) returning the output the layer must compute
    (float32), or None.
    """
    layer = layer_cls(**init_kwargs)
    outputs = {}
    for i, input_shape in enumerate(input_shapes):
        inputs = _random_inputs(input_shape, seed=i)
        output = np.asarray(layer(inputs))
        promised = layer.compute_output_shape(_shape_of(input_shape))
        assert output.shape == tuple(promised), (layer_cls.__name__, input_shape, output.shape,
                                                 promised)
        if expected is not None:
            _assert_same(output, expected(inputs, layer), f"{layer_cls.__name__} {input_shape}")
        outputs[i] = (inputs, output)

    config = layer.get_config()
    rebuilt = layer_cls.from_config(config)
    assert rebuilt.get_config() == config, layer_cls.__name__
    first_inputs, first_output = outputs[0]
    rebuilt(first_inputs)  # builds its weights
    rebuilt.set_weights(layer.get_weights())
    _assert_same(rebuilt(first_inputs), first_output, f"{layer_cls.__name__} from_config")

    symbolic = _symbolic_inputs(input_shapes[0])
    model = keras.Model(symbolic, layer_cls.from_config(config)(symbolic))
    model.layers[-1].set_weights(layer.get_weights())
    path = str(tmp_path / f"{layer_cls.__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[-1]) is layer_cls, type(loaded.layers[-1])
    channels = _channels(input_shapes[0])
    for i, (inputs, output) in outputs.items():
        if _channels(input_shapes[i]) == channels:  # the model's inputs fix the channels
            _assert_same(loaded(inputs), output, f"{layer_cls.__name__} .keras")

    with dtype_policy("mixed_bfloat16"):
        mixed = layer_cls(**init_kwargs)
        mixed(first_inputs)
        mixed.set_weights(layer.get_weights())
        low = mixed(first_inputs)
        assert low.dtype == tf.bfloat16, (layer_cls.__name__, low.dtype)
        scale = max(float(np.abs(first_output).max()), 1.0)
        _assert_same(low, first_output, f"{layer_cls.__name__} mixed_bfloat16",
                     rtol=bfloat16_tolerance, atol=bfloat16_tolerance * scale)
        full = layer_cls(**{**init_kwargs, "dtype": "float32"})
        full(first_inputs)
        full.set_weights(layer.get_weights())
        assert full(first_inputs).dtype == tf.float32, layer_cls.__name__
    COVERED.add(layer_cls)


def run_model_test(network, input_shapes, output_shape, tmp_path, parameters=None, atol=1e-4,
                   saved_model=True):
    """The checks of the module docstring for the built Keras `network`.

    input_shapes: sample input shapes (odd sizes among them); output_shape: a function of
    an input shape giving the output shape the network must produce.
    """
    samples = []
    for i, input_shape in enumerate(input_shapes):
        inputs = _random_inputs(input_shape, seed=i)
        output = np.asarray(network(inputs, training=False))
        assert output.shape == tuple(output_shape(input_shape)), (network.name, input_shape,
                                                                  output.shape)
        samples.append((inputs, output))
    if parameters is not None:
        trainable = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
        assert trainable == parameters, (network.name, trainable, parameters)
    if not saved_model:  # the caller says which test does the round trip
        return
    path = str(tmp_path / f"{network.name}_saved_model")
    network.export(path, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(path)
    for inputs, output in samples:
        _assert_same(served.serve(tf.constant(inputs)), output, f"{network.name} SavedModel",
                     rtol=1e-4, atol=atol)


# --------------------------------------------------------------------------- shared helpers


def one_line_error(capsys):
    """The captured stderr, asserted to be one line and no traceback."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def exit_error(main, argv, capsys):
    """`main(argv)`'s one-line error, its exit status asserted to be 2 (a usage error)."""
    status = main(argv)
    err = one_line_error(capsys)
    assert status == 2, (status, err)
    return err


def run_trainer(module, *args, timeout=900):
    """`python -m MODULE ARGS` in a fresh process (exit status 0 asserted, its stderr shown
    otherwise). End-to-end trainings of the command lines run this way, as a user runs
    them, and what one run leaves in its process cannot add up in the suite's."""
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def pretend_machine(monkeypatch, gpus=0, native_bf16=False, capped_below_amx=False):
    """Make `segcore.precision` see a machine with `gpus` GPUs, a CPU with or without
    native bfloat16, and oneDNN capped below AMX or not, whatever runs the test."""
    from segcore import precision

    list_devices = precision.tf.config.list_logical_devices

    def devices(kind=None):
        return ["gpu"] * gpus if kind == "GPU" else list_devices(kind)

    monkeypatch.setattr(precision.tf.config, "list_logical_devices", devices)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda flags=None: native_bf16)
    monkeypatch.setattr(precision, "capped_below_amx", lambda: capped_below_amx)


def read_all(dataset):
    """Every element as numpy; an in-graph DataError check becomes DataError."""
    try:
        return list(dataset.as_numpy_iterator())
    except tf.errors.OpError as error:
        raise images.data_error_from(error) from None


def h5_arrays(path):
    """{name: array} of every dataset in the HDF5 file at `path` (Keras .weights.h5)."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return arrays


class LocalHTTPServer:
    """Serves `files` (path -> bytes) on 127.0.0.1 with HTTP Range support.

    `drop[path] = n`: the next answer for path stops after n bytes (connection closed).
    `ignore_range`: paths answered in full (200) whatever the Range header.
    `requests`: (path, Range header) of every request.
    """

    def __init__(self):
        self.files, self.drop, self.ignore_range, self.requests = {}, {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # http.server's name
                body = server.files.get(self.path)
                server.requests.append((self.path, self.headers.get("Range")))
                if body is None:
                    self.send_error(404)
                    return
                start, wanted = 0, self.headers.get("Range")
                if wanted and self.path not in server.ignore_range:
                    start = int(wanted.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.drop.pop(self.path, None)
                self.wfile.write(body[start:start + limit] if limit else body[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll: shutdown() waits for it (0.5 s by default)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
