"""The JSON body TF Serving's REST API returns for a signature's outputs (row format).

`rest_response_json(outputs)` writes numpy outputs (batch first) as
tensorflow_serving/util/json_tensor.cc `MakeRowFormatJsonFromTensors` does:
``{"predictions": [...]}`` with one element per batch item (an object keyed by
output name when there are several outputs, the bare value for one), rapidjson's
PrettyWriter (4-space indent) with each item's arrays on one line (", "
separators), floats as absl's six significant digits or ``%.9g`` when those do not
round-trip (`WriteDecimal`), and string outputs whose name ends in ``_bytes`` as
``{"b64": ...}``. Used to state response sizes without a model server (the README's
serving section); outputs are written in sorted name order (TF Serving's order is
its proto map's).
"""

import base64

import numpy as np


def _decimal(value):
    if not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    text = "%g" % value
    if np.float32(float(text)) != value:
        text = "%.9g" % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _values(array, as_bytes, indent):
    array = np.asarray(array)
    if array.ndim == 0:
        value = array.item()
        if isinstance(value, bytes):
            if as_bytes:
                pad = " " * indent
                return ('{\n' + pad + '    "b64": "' + base64.b64encode(value).decode() + '"\n'
                        + pad + "}")
            return '"' + value.decode("utf-8", "replace") + '"'
        if array.dtype.kind == "f":
            return _decimal(np.float32(value) if array.dtype == np.float32 else value)
        if array.dtype.kind == "b":
            return "true" if value else "false"
        return str(int(value))
    if array.ndim == 1 and array.dtype.kind in "iu":
        return "[" + ", ".join(map(str, array.tolist())) + "]"
    if array.ndim == 1 and array.dtype == np.float32:
        return "[" + ", ".join(_decimal(v) for v in array) + "]"
    return "[" + ", ".join(_values(item, as_bytes, indent) for item in array) + "]"


def rest_response_json(outputs):
    """The REST predict response body (str) of `outputs` {name: numpy array [batch, ...]}."""
    names = sorted(outputs)
    batch = {len(np.asarray(outputs[n])) for n in names}
    if len(batch) != 1:
        raise ValueError(f"outputs have different batch sizes {sorted(batch)}")
    items = []
    for index in range(batch.pop()):
        values = {n: _values(np.asarray(outputs[n])[index],
                             n.endswith("_bytes") and np.asarray(outputs[n]).dtype == object,
                             12 if len(names) > 1 else 8)
                  for n in names}
        if len(names) == 1:
            items.append("        " + values[names[0]])
        else:
            items.append("        {\n" + ",\n".join(f'            "{n}": {values[n]}'
                                                    for n in names) + "\n        }")
    return '{\n    "predictions": [\n' + ",\n".join(items) + "\n    ]\n}"


def rest_sizes(model, image_path):
    """[(signature, request bytes, response bytes)] of TF Serving REST predict calls on one
    image file with every image signature of SavedModel `model` (a path `segcore.evaluate`
    accepts), the bodies written as TF Serving reads and writes them."""
    import json

    import tensorflow as tf

    from segcore.evaluate import resolve_saved_model
    from segcore.export import BYTES_SIGNATURES, IMAGE_SIGNATURES

    signatures = tf.saved_model.load(resolve_saved_model(model)).signatures
    with open(image_path, "rb") as f:
        data = f.read()
    image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    rows = []
    for name in IMAGE_SIGNATURES:
        if name in BYTES_SIGNATURES:
            inputs = tf.constant([data])
            request = {"signature_name": name,
                       "instances": [{"b64": base64.b64encode(data).decode()}]}
        else:
            inputs = tf.constant(image[None])
            request = {"signature_name": name, "instances": image[None].tolist()}
        outputs = {k: v.numpy() for k, v in signatures[name](images=inputs).items()}
        rows.append((name, len(json.dumps(request)), len(rest_response_json(outputs))))
    return rows


def main(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m segcore.serving_json SAVED_MODEL_OR_RUN_DIR IMAGE", file=sys.stderr)
        return 2
    print(f"{'signature':26s} {'request JSON':>14s} {'response JSON':>14s}")
    for name, request, response in rest_sizes(*argv):
        print(f"{name:26s} {request:14,d} {response:14,d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
