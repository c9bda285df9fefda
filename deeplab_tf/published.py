"""The TensorFlow team's published DeepLab v3 MobileNetV2 (PASCAL VOC, 21 classes), TFLite.

`deeplabv3_257_mv_gpu.tflite` (MobileNetV2 with depth multiplier 0.5, the model of the
TensorFlow Lite segmentation examples; the tests and notebooks find it in the folder named by
SEGCORE_WEIGHTS, by default `weights/` beside the dataset samples, whose README gives its
provenance and sha256): input float32 [1, 257, 257, 3] RGB scaled to [-1, 1], output the logits
[1, 257, 257, 21] at the input size. `PublishedDeepLab.logits(image)` resizes
any uint8 RGB image to 257 x 257 (bilinear), runs the interpreter and resizes
the logits back (bilinear) to the image size. It gives real score maps on real
photos where no trained checkpoint of this package exists (e.g. for the dense
CRF, `segcore.crf`). The file is never downloaded: a missing one is a ConfigError.
"""

import os

import numpy as np
import tensorflow as tf

from segcore.errors import ConfigError

INPUT_SIZE = 257
NUM_CLASSES = 21
FILE_NAME = "deeplabv3_257_mv_gpu.tflite"


class PublishedDeepLab:
    def __init__(self, path):
        if os.path.isdir(path):
            path = os.path.join(path, FILE_NAME)
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: no such TFLite file (expected the published {FILE_NAME})")
        self.path = path
        self._interpreter = tf.lite.Interpreter(model_path=path)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        expected = [1, INPUT_SIZE, INPUT_SIZE, 3]
        if list(self._input["shape"]) != expected or self._output["shape"][-1] != NUM_CLASSES:
            raise ConfigError(f"{path}: input {list(self._input['shape'])} and output "
                              f"{list(self._output['shape'])}; expected {expected} -> [..., 21]")

    def logits(self, image):
        """float32 logits [H, W, 21] of one uint8 RGB image [H, W, 3]."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ConfigError(f"image must be [H, W, 3] RGB, got shape {image.shape}")
        resized = tf.image.resize(tf.cast(image, tf.float32), [INPUT_SIZE, INPUT_SIZE])
        scaled = (resized.numpy() / 127.5 - 1.0)[None].astype(np.float32)
        self._interpreter.set_tensor(self._input["index"], scaled)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._output["index"])
        return tf.image.resize(logits, image.shape[:2]).numpy()[0]

    def probabilities(self, image):
        """Softmax of `logits(image)`, float32 [H, W, 21]."""
        return tf.nn.softmax(self.logits(image), axis=-1).numpy()
