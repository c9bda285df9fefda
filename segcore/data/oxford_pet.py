"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) through TFDS's `oxford_iiit_pet`.

`data_dir` is the TFDS data directory where `oxford_iiit_pet` was prepared
(`python -m segcore.data download oxford_iiit_pet --data-dir DIR` runs TFDS's
own download, which checks TFDS's recorded checksums). Nothing is downloaded
when reading.

The trimaps store 1 = pet, 2 = background, 3 = border (the uncertain band
around the pet). As in the TensorFlow image-segmentation tutorial
(`input_mask -= 1`), they become classes 0 = pet, 1 = background,
2 = border: three classes, the border one learned too. Any other trimap value
is an error naming the example's file_name.
Splits: train 3,680, test 3,669 (TFDS's, which follow the published lists).
"""

import numpy as np
import tensorflow as tf

from segcore.data import images
from segcore.data.info import DatasetInfo
from segcore.errors import DataError

INFO = DatasetInfo(
    name="oxford_iiit_pet",
    num_classes=3,
    class_names=("pet", "background", "border"),
    palette=((255, 200, 0), (0, 0, 0), (255, 255, 255)),
    splits={"train": 3680, "test": 3669},
    citation="Parkhi, Vedaldi, Zisserman, Jawahar, Cats and Dogs, CVPR 2012",
)

TFDS_NAME = "oxford_iiit_pet"


def to_pair(example):
    """(image uint8 [H, W, 3], classes uint8 [H, W]) of a TFDS example, checked."""
    image, trimap = example["image"], example["segmentation_mask"][..., 0]
    name = example.get("file_name", tf.constant(TFDS_NAME))
    valid = tf.logical_and(trimap >= 1, trimap <= 3)
    bad = tf.sort(tf.unique(tf.boolean_mask(tf.reshape(tf.cast(trimap, tf.int32), [-1]),
                                            tf.reshape(tf.logical_not(valid), [-1])))[0])
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(trimap)))
    checks = [
        images.assert_that(tf.reduce_all(valid), "DataError: oxford_iiit_pet: ", name,
                           ": trimap values ",
                           tf.strings.reduce_join(tf.strings.as_string(bad[:16]), separator=","),
                           " are not 1 (pet), 2 (background) or 3 (border)"),
        images.assert_that(same_size, "DataError: oxford_iiit_pet: ", name,
                           ": image and trimap sizes differ"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.identity(trimap - 1)


def _load(data_dir, split):
    import tensorflow_datasets as tfds

    if split not in INFO.splits:
        raise DataError(f"oxford_iiit_pet: unknown split {split!r}; expected one of "
                        f"{sorted(INFO.splits)}")
    try:
        return tfds.load(TFDS_NAME, split=split, data_dir=data_dir, download=False)
    except (AssertionError, FileNotFoundError, tfds.core.registered.DatasetNotFoundError) as error:
        raise DataError(
            f"oxford_iiit_pet: not prepared in {data_dir} ({str(error).splitlines()[0]}); run "
            f"python -m segcore.data download oxford_iiit_pet --data-dir {data_dir}"
        ) from None


def read(data_dir, split="train"):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]) from the TFDS build."""
    return _load(data_dir, split).map(to_pair, num_parallel_calls=tf.data.AUTOTUNE,
                                      deterministic=True)


def scan(data_dir, split="train"):
    """Every example once: (image, labels, None) or (None, None, problem naming the file)."""
    for example in _load(data_dir, split).as_numpy_iterator():
        name = example["file_name"].decode(errors="replace")
        image, trimap = example["image"], example["segmentation_mask"][..., 0]
        bad = sorted(set(np.unique(trimap).tolist()) - {1, 2, 3})
        if image.shape[:2] != trimap.shape:
            yield None, None, (f"oxford_iiit_pet: {name}: image is "
                               f"{image.shape[1]}x{image.shape[0]} "
                               f"but its trimap is {trimap.shape[1]}x{trimap.shape[0]}")
        elif bad:
            yield None, None, (f"oxford_iiit_pet: {name}: trimap values "
                               f"{','.join(map(str, bad[:16]))} "
                               "are not 1 (pet), 2 (background) or 3 (border)")
        else:
            yield image, trimap - 1, None
