"""segcore: the one shared engine of the segmentation package.

Data readers and tf.data pipelines (`segcore.data`), on-device augmentation
(`segcore.augment`), losses (`segcore.losses`), metrics (`segcore.metrics`),
training under `tf.distribute` (`segcore.training`), SavedModel export
(`segcore.export`) and visualisation (`segcore.visualize`).
"""

__version__ = "0.1.0"

from segcore import onednn as _onednn

_onednn.apply()  # before any oneDNN primitive exists: see segcore/onednn.py
