"""Keras callbacks that print training the way the source documents (SOURCES.md) do.

`TrainNNLossPrinter` prints, after every epoch, what `train_nn` of seeds 000 and 003 (the
Korean and Chinese KITTI Road FCN-8s blog posts) prints::

    EPOCH 1 ...
    Loss = 12.345

where the loss is the *sum* of the batch losses of the epoch (`total_loss +=
loss`), not Keras' mean: Keras reports the running mean of the epoch, so the
total is that mean times the number of batches. `totals` keeps the values.
"""

import keras


class TrainNNLossPrinter(keras.callbacks.Callback):
    def __init__(self, echo=print):
        super().__init__()
        self.echo = echo
        self.totals = []
        self._batches = 0
        self._mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._batches, self._mean = 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        self._batches = batch + 1
        if logs and "loss" in logs:
            self._mean = float(logs["loss"])

    def on_epoch_end(self, epoch, logs=None):
        total = self._mean * self._batches
        self.totals.append(total)
        self.echo(f"EPOCH {epoch + 1} ...\nLoss = {total:.3f}\n")
