"""`SegmentationTask`: a network with its preprocessing and on-device augmentation.

The network (FCN, U-Net, DeepLab) maps preprocessed images to logits. The task
takes raw images (uint8 or float RGB in [0, 255]), so the same object is used
by `model.fit`, evaluation and export. Its `train_step` augments the batch
first (inside the compiled step, on the accelerator), then runs Keras' own
TensorFlow train step: one training loop for every model family.

With a `seed`, the augmentation of each step is a stateless function of (seed,
step number, replica): the step number is the optimizer's iteration count, which
a backup restores, so a resumed run augments as the uninterrupted one.
"""

import keras
import tensorflow as tf

from segcore.augment import Augmenter
from segcore.distribute import MultiWorkerFitMixin


class SegmentationTask(MultiWorkerFitMixin, keras.Model):
    # MultiWorkerFitMixin: Keras 3 fit under MultiWorkerMirroredStrategy (keras-team/keras#20585).
    def __init__(self, network, preprocess, augmenter=None, seed=None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{network.name}_task"), **kwargs)
        self.augment_seed = seed
        self.network = network
        self.preprocess = preprocess
        self.augmenter = augmenter if augmenter is None or isinstance(augmenter, Augmenter) \
            else Augmenter(augmenter)

    def call(self, images, training=False):
        return self.network(self.preprocess(images), training=training)

    def train_step(self, data):
        images, labels, weights = keras.utils.unpack_x_y_sample_weight(data)
        if self.augmenter is not None:
            images, labels, weights = self.augmenter(images, labels, weights,
                                                     seed=self.step_seed())
        return super().train_step((images, labels, weights))

    def step_seed(self):
        """[2] int64 stateless seed of this training step on this replica (None without a seed)."""
        if self.augment_seed is None:
            return None
        seed = tf.stack([tf.constant(int(self.augment_seed), tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(
                seed, tf.cast(replica.replica_id_in_sync_group, tf.int64))
        return seed
