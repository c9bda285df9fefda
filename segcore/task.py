"""`SegmentationTask`: a network with its preprocessing and on-device augmentation.

The network (FCN, U-Net, DeepLab) maps preprocessed images to logits. The task
takes raw images (uint8 or float RGB in [0, 255]), so the same object is used
by `model.fit`, evaluation and export. Its `train_step` augments the batch
first (inside the compiled step, on the accelerator), then runs Keras' own
TensorFlow train step: one training loop for every model family.
"""

import keras

from segcore.augment import Augmenter
from segcore.distribute import MultiWorkerFitMixin


class SegmentationTask(MultiWorkerFitMixin, keras.Model):
    # MultiWorkerFitMixin: Keras 3 fit under MultiWorkerMirroredStrategy (keras-team/keras#20585).
    def __init__(self, network, preprocess, augmenter=None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{network.name}_task"), **kwargs)
        self.network = network
        self.preprocess = preprocess
        self.augmenter = augmenter if augmenter is None or isinstance(augmenter, Augmenter) \
            else Augmenter(augmenter)

    def call(self, images, training=False):
        return self.network(self.preprocess(images), training=training)

    def train_step(self, data):
        images, labels, weights = keras.utils.unpack_x_y_sample_weight(data)
        if self.augmenter is not None:
            images, labels, weights = self.augmenter(images, labels, weights)
        return super().train_step((images, labels, weights))
