"""What the three builders share: features, example generation from a reader."""

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from segcore.data import images


def features():
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
        "segmentation_mask": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
        "file_name": tfds.features.Text(),
    })


def as_pairs(dataset):
    """(image uint8 [H, W, 3], labels uint8 [H, W]) from a builder's examples."""
    return dataset.map(lambda ex: (ex["image"], ex["segmentation_mask"][..., 0]),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class ReaderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A manual-download builder whose examples are one plain-file reader's pairs."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (segcore plain-file readers)."}
    READER = None  # the segcore.data module
    HOMEPAGE = ""

    def _info(self):
        info = self.READER.INFO
        return tfds.core.DatasetInfo(
            builder=self,
            description=(f"{info.name}: {info.num_classes} classes "
                         f"({', '.join(info.class_names)}); "
                         f"segmentation_mask holds class ids, {info.ignore_label} = ignore."),
            features=features(),
            supervised_keys=("image", "segmentation_mask"),
            homepage=self.HOMEPAGE,
            citation=info.citation,
        )

    def _splits(self, manual_dir):
        """Split names to build from `manual_dir`."""
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        return {split: self._generate_examples(manual_dir, split)
                for split in self._splits(manual_dir)}

    def _pairs(self, manual_dir, split):
        """(keys, dataset of (image, labels)) of a split, from the reader."""
        index = self.READER.index(manual_dir, split)
        keys = [os.path.relpath(s.image, manual_dir) + (f":{s.image_page}" if s.image_page else "")
                for s in index.samples]
        return keys, images.pairs_dataset(index)

    def _generate_examples(self, manual_dir, split):
        keys, dataset = self._pairs(manual_dir, split)
        for key, (image, labels) in zip(keys, dataset.as_numpy_iterator(), strict=True):
            yield key, {"image": image, "segmentation_mask": labels[..., None], "file_name": key}
