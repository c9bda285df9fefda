"""segcore.data.make_pipeline: seeded shuffling, sharding, global batches, resize/pad."""

import numpy as np
import pytest
import tensorflow as tf

from segcore.data.pipeline import make_pipeline, pad_pair, resize_pair
from segcore.errors import ConfigError


def numbered_pairs(count=10, size=(6, 8)):
    """Pair i: an image filled with i and labels filled with i % 3."""
    images = np.stack([np.full(size + (3,), i, np.uint8) for i in range(count)])
    labels = np.stack([np.full(size, i % 3, np.uint8) for i in range(count)])
    return tf.data.Dataset.from_tensor_slices((images, labels))


def order(dataset):
    return [int(v) for images, _ in dataset for v in images[:, 0, 0, 0].numpy()]


def test_shuffling_is_seeded_reshuffled_each_epoch_and_complete():
    pipeline = make_pipeline(numbered_pairs(), batch_size=2, seed=7, cache=False)
    first, second = order(pipeline), order(pipeline)
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second  # a new order each epoch
    again = make_pipeline(numbered_pairs(), batch_size=2, seed=7, cache=False)
    assert order(again) == first  # same seed, same orders
    other = make_pipeline(numbered_pairs(), batch_size=2, seed=8, cache=False)
    assert order(other) != first


def test_training_drops_the_last_partial_batch_and_evaluation_keeps_it():
    train = make_pipeline(numbered_pairs(10), batch_size=4, seed=0)
    assert [images.shape[0] for images, _ in train] == [4, 4]
    val = make_pipeline(numbered_pairs(10), batch_size=4, training=False)
    assert [images.shape[0] for images, _ in val] == [4, 4, 2]
    assert order(val) == list(range(10))  # evaluation order is the reader's


def test_shards_partition_the_data():
    seen = [order(make_pipeline(numbered_pairs(12), batch_size=2, training=False,
                                shard=(3, index))) for index in range(3)]
    assert [len(s) for s in seen] == [4, 4, 4]
    assert sorted(sum(seen, [])) == list(range(12))
    assert seen[1] == [1, 4, 7, 10]


def counted_reads(dataset, reads):
    """`dataset`, appending each pair's number to `reads` whenever the source is read."""
    def note(image, labels):
        reads.append(int(image[0, 0, 0]))
        return image, labels

    def read(image, labels):
        image, labels = tf.py_function(note, [image, labels], [tf.uint8, tf.uint8])
        return tf.ensure_shape(image, [6, 8, 3]), tf.ensure_shape(labels, [6, 8])

    return dataset.map(read)


@pytest.mark.parametrize("training", [False, True])
def test_a_cached_pipeline_reads_its_source_once(training):
    reads = []
    pipeline = make_pipeline(counted_reads(numbered_pairs(), reads), batch_size=5,
                             training=training, cache=True, seed=0)
    first, second = order(pipeline), order(pipeline)
    assert sorted(first) == sorted(second) == list(range(10))
    assert sorted(reads) == list(range(10))  # the second epoch came from the cache
    reads.clear()
    uncached = make_pipeline(counted_reads(numbered_pairs(), reads), batch_size=5,
                             training=training, cache=False, seed=0)
    order(uncached), order(uncached)
    assert sorted(reads) == sorted(list(range(10)) * 2)  # the counter does see every read


def test_resize_keeps_labels_unmixed():
    labels = np.zeros((40, 40), np.uint8)
    labels[:, 20:] = 2  # a sharp edge: bilinear would invent class 1 there
    image = np.repeat(labels[..., None] * 100, 3, axis=-1).astype(np.uint8)
    weights = np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
    out_image, out_labels, out_weights = resize_pair(image, labels, (17, 23), weights)
    assert out_image.dtype == tf.uint8 and out_image.shape == (17, 23, 3)
    assert set(np.unique(out_labels.numpy())) == {0, 2}
    assert len(np.unique(out_image.numpy())) > 2  # the image is interpolated
    assert out_weights.shape == (17, 23)
    assert 0 < out_weights.numpy().min() < out_weights.numpy().max() < 1


def test_pad_fills_image_labels_and_weights_and_crops_large_inputs():
    image = np.full((3, 4, 3), 9, np.uint8)
    labels = np.ones((3, 4), np.uint8)
    weights = np.full((3, 4), 2.0, np.float32)
    out_image, out_labels, out_weights = pad_pair(image, labels, (5, 6), ignore_label=255,
                                                  image_fill=(123.68, 116.78, 103.94),
                                                  weights=weights)
    out_image, out_labels, out_weights = out_image.numpy(), out_labels.numpy(), out_weights.numpy()
    np.testing.assert_array_equal(out_image[:3, :4], image)
    np.testing.assert_array_equal(out_image[4, 5], [124, 117, 104])  # the mean colour, rounded
    np.testing.assert_array_equal(out_image[:3, 4:], np.tile([124, 117, 104], (3, 2, 1)))
    assert (out_labels[:3, :4] == 1).all() and (out_labels[3:] == 255).all()
    assert (out_labels[:, 4:] == 255).all()
    assert (out_weights[:3, :4] == 2).all() and out_weights[3:].sum() == 0
    cropped, cropped_labels = pad_pair(np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9), np.uint8),
                                       (5, 6))
    assert cropped.shape == (5, 6, 3) and cropped_labels.shape == (5, 6)


def test_pad_mode_batches_different_sizes_with_the_family_fill():
    pairs = [(np.full((h, w, 3), 50, np.uint8), np.zeros((h, w), np.uint8))
             for h, w in [(5, 7), (8, 3), (6, 6)]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(pairs), output_signature=(tf.TensorSpec([None, None, 3], tf.uint8),
                                               tf.TensorSpec([None, None], tf.uint8)))
    images, labels = next(iter(make_pipeline(dataset, 3, size=(8, 8), mode="pad",
                                              training=False, image_fill=(1, 2, 3))))
    assert images.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(images[1, 0, 5], [1, 2, 3])
    assert int(tf.reduce_sum(tf.cast(labels != 255, tf.int32))) == 35 + 24 + 36


def test_weights_travel_with_their_pairs():
    images = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(6)])
    labels = np.zeros((6, 4, 4), np.uint8)
    weights = np.stack([np.full((4, 4), i, np.float32) for i in range(6)])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels, weights))
    for batch_images, _, batch_weights in make_pipeline(dataset, 2, size=(4, 4), seed=3):
        np.testing.assert_array_equal(batch_images.numpy()[:, 0, 0, 0],
                                      batch_weights.numpy()[:, 0, 0])


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"batch_size": 2, "mode": "crop"}, "pipeline mode must be 'resize' or 'pad', got 'crop'"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_pipeline(numbered_pairs(), **kwargs)
