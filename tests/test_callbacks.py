"""segcore.callbacks.TrainNNLossPrinter: the seeds' `train_nn` loss print (sum of batch losses)."""

import keras
import numpy as np

from segcore.callbacks import TrainNNLossPrinter


def test_prints_the_sum_of_batch_losses_per_epoch():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")   # lr 0: every batch loss known
    x = np.ones((8, 3), np.float32)
    y = np.arange(8, dtype=np.float32)[:, None]
    lines = []
    printer = TrainNNLossPrinter(echo=lines.append)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False, callbacks=[printer])
    # batches of y = (0,1), (2,3), (4,5), (6,7): mse 0.5, 6.5, 20.5, 42.5 -> total 70
    np.testing.assert_allclose(printer.totals, [70.0, 70.0], rtol=1e-6)
    assert lines == ["EPOCH 1 ...\nLoss = 70.000\n", "EPOCH 2 ...\nLoss = 70.000\n"]
