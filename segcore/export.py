"""SavedModel export for TF Serving.

Signatures:

* ``serving_default``: `images` uint8 [batch, height, width, 3] of any size ->
  `class_ids` int32 [batch, height, width] and `probabilities` float32
  [batch, height, width, classes]. Preprocessing is inside the graph.
* ``serving_bytes``: `images` string [batch] of encoded PNG/JPEG (TF Serving's
  REST ``{"b64": ...}``), all of the same size -> the same outputs.
* ``metadata``: `num_classes`, `class_names`, `palette`, `ignore_label`, so a
  client can draw and name classes from the SavedModel alone, and `dtype_policy`,
  the precision the graph computes in (float32 unless the run asked for
  `--export-precision mixed`).

`tf.saved_model.save` of a small `tf.Module` that tracks the network's variables
once: Keras 3.15's `model.export` writes every variable twice (1.0 GB for
FCN-8s); this writes each once (about 1.0x the parameter bytes).
"""

import os

import numpy as np
import tensorflow as tf

from segcore.errors import SegmentationError

SIGNATURES = ("serving_default", "serving_bytes", "metadata")


class ServingModule(tf.Module):
    def __init__(self, predict_fn, variables, num_classes, class_names, palette, ignore_label,
                 dtype_policy="float32"):
        super().__init__(name="segmentation_serving")
        self._predict_fn = predict_fn
        self.model_variables = list(variables)
        self._metadata = {
            "num_classes": tf.constant(num_classes, tf.int32),
            "class_names": tf.constant(list(class_names), tf.string),
            "palette": tf.constant(np.asarray(palette, np.int32).reshape(-1, 3)),
            "ignore_label": tf.constant(ignore_label, tf.int32),
            "dtype_policy": tf.constant(dtype_policy, tf.string),
        }

    def _outputs(self, images):
        probabilities = tf.cast(self._predict_fn(images), tf.float32)
        return {
            "class_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
            "probabilities": probabilities,
        }

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images):
        return self._outputs(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes(self, images):
        decoded = tf.map_fn(
            lambda data: tf.io.decode_image(data, channels=3, expand_animations=False),
            images, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
        )
        return self._outputs(decoded)

    @tf.function(input_signature=[])
    def metadata(self):
        return dict(self._metadata)


def export_saved_model(path, predict_fn, variables, num_classes, class_names, palette,
                       ignore_label=255, dtype_policy="float32"):
    """Write a SavedModel serving `predict_fn` (uint8 images -> probabilities) to `path`;
    `dtype_policy` (the policy `predict_fn`'s network was built in) goes into `metadata`."""
    module = ServingModule(predict_fn, variables, num_classes, class_names, palette, ignore_label,
                           dtype_policy)
    signatures = {
        "serving_default": module.serve.get_concrete_function(),
        "serving_bytes": module.serve_bytes.get_concrete_function(),
        "metadata": module.metadata.get_concrete_function(),
    }
    tf.saved_model.save(module, path, signatures=signatures)
    return path


def saved_model_bytes(path):
    """Total size of the files of a SavedModel directory."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def load_serving(path):
    """Load a SavedModel and check it has this package's signatures."""
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise SegmentationError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    loaded = tf.saved_model.load(path)
    missing = [s for s in ("serving_default",) if s not in loaded.signatures]
    if missing:
        raise SegmentationError(
            f"{path}: SavedModel has no signature {', '.join(missing)} "
            f"(found {', '.join(loaded.signatures) or 'none'}); expected one exported by segcore.export"
        )
    return loaded
