"""The tf.data input pipeline: decode -> cache -> shuffle -> resize/pad -> batch -> prefetch.

Decoding runs in parallel in the reader's `map`; decoded pairs are cached in
memory (or in a file) so later epochs skip decoding; shuffling is deterministic
under a seed; batches have the *global* batch size (a distribution strategy
splits them across replicas); sharding serves multi-worker training.
Augmentation is not here: it runs on the accelerator inside the training step
(`segcore.augment`).
"""

import tensorflow as tf

from segcore.data.info import IGNORE_LABEL
from segcore.errors import ConfigError


def resize_pair(image, labels, size, weights=None):
    """Image resized bilinearly, labels by nearest neighbour (never interpolated);
    an optional per-pixel weight map [H, W] bilinearly."""
    image = tf.image.resize(image, size, method="bilinear", antialias=False)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    labels = tf.image.resize(labels[..., None], size, method="nearest")[..., 0]
    if weights is None:
        return image, labels
    return image, labels, tf.image.resize(weights[..., None], size, method="bilinear")[..., 0]


def pad_pair(image, labels, size, ignore_label=IGNORE_LABEL, image_fill=(0, 0, 0), weights=None):
    """Pad at the bottom/right to at least `size` (image with the RGB `image_fill`,
    labels with the ignore label, weights with 0), then crop the top-left `size` window."""
    height, width = size
    shape = tf.shape(labels)
    pad_h, pad_w = tf.maximum(height - shape[0], 0), tf.maximum(width - shape[1], 0)
    inside = tf.pad(tf.ones(shape[:2], tf.bool), [[0, pad_h], [0, pad_w]])
    fill = tf.cast(tf.round(tf.constant(image_fill, tf.float32)), image.dtype)
    image = tf.where(inside[..., None], tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]]), fill)
    labels = tf.pad(labels, [[0, pad_h], [0, pad_w]], constant_values=ignore_label)
    if weights is None:
        return image[:height, :width], labels[:height, :width]
    weights = tf.pad(weights, [[0, pad_h], [0, pad_w]])
    return image[:height, :width], labels[:height, :width], weights[:height, :width]


def _sizer(size, mode, ignore_label, image_fill):
    """The map function that brings a pair (and its weights) to `size` by `mode`."""
    size = tuple(int(s) for s in size)
    if mode == "resize":
        return lambda image, label, w=None: resize_pair(image, label, size, w)
    return lambda image, label, w=None: pad_pair(
        image, label, size, ignore_label, image_fill, weights=w)


def _auto_shard_policy(auto_shard):
    policies = {"data": tf.data.experimental.AutoShardPolicy.DATA,
                "file": tf.data.experimental.AutoShardPolicy.FILE}
    if auto_shard not in policies:
        raise ConfigError(f"auto_shard must be 'data' or 'file', got {auto_shard!r}")
    return policies[auto_shard]


def make_pipeline(dataset, batch_size, size=None, mode="resize", training=True, seed=0,
                  cache=True, shard=None, shuffle_buffer=1024, ignore_label=IGNORE_LABEL,
                  repeat=False, image_fill=(0, 0, 0), auto_shard="data"):
    """Batched pipeline of (image uint8 [B, H, W, 3], labels uint8 [B, H, W]
    [, weights float32 [B, H, W]]).

    Args:
      dataset: a reader's dataset of (image, labels) at original resolution, or
        of (image, labels, per-pixel weights).
      batch_size: the global batch size.
      size: (H, W) of every batch element; None keeps the original size (then
        every element must have the same size, or batch_size must be 1).
      mode: "resize" (bilinear image, nearest labels) or "pad" (pad with the
        ignore label and crop: the augmentation then scales and crops).
      image_fill: RGB of the image's padding in "pad" mode (the network's mean
        colour, so that padding is 0 after preprocessing).
      training: shuffle, and drop the last partial batch.
      cache: True (memory), a file path, or False.
      shard: (num_workers, worker_index) for multi-worker training, or None.
      auto_shard: how a multi-worker strategy shards the pipeline when `shard` is
        None: "data" (every worker reads all, keeps its slices of each global
        batch) or "file" (every worker reads its share of the reader's files;
        `segcore.distribute.shard_policy` says which applies).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if mode not in ("resize", "pad"):
        raise ConfigError(f"pipeline mode must be 'resize' or 'pad', got {mode!r}")
    policy = _auto_shard_policy(auto_shard)
    if shard is not None:
        dataset = dataset.shard(*shard)
    if cache:
        dataset = dataset.cache("" if cache is True else cache)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if size is not None:
        dataset = dataset.map(_sizer(size, mode, ignore_label, image_fill),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training,
                            num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if shard is not None else policy)
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def pass_seed(seed, index):
    """Shuffle seed of pass `index` over the training set: a function of (run seed,
    pass) only, so a resumed run draws the order the uninterrupted one drew."""
    return (int(seed) * 1_000_003 + int(index)) % (2**31 - 1)


def count_batches(dataset, batch_size):
    """Full batches of `batch_size` in one pass of `dataset` (its cardinality when
    tf.data knows it, else counted by reading it once)."""
    count = int(dataset.cardinality().numpy())
    if count < 0:
        count = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, *_: n + 1).numpy())
    return count // batch_size


def make_training_stream(dataset, batch_size, batches, first_batch=0, batches_per_pass=None,
                         size=None, mode="resize", seed=0, cache=True, shard=None,
                         shuffle_buffer=1024, ignore_label=IGNORE_LABEL, image_fill=(0, 0, 0),
                         auto_shard="data"):
    """Training batches `first_batch` .. `first_batch + batches - 1` of the run's stream.

    The stream is pass 0, pass 1, ... over the training set, pass p shuffled with
    `pass_seed(seed, p)` and batched with its last partial batch dropped, as
    `make_pipeline(training=True)` repeated; but each pass's order depends on
    (seed, p) only, not on how many iterators came before, so a resumed run starts
    at global batch `first_batch` with the data order of the uninterrupted run
    (the already-trained batches of its pass are skipped before decoding/resizing).
    `batches_per_pass` is counted when not given.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if mode not in ("resize", "pad"):
        raise ConfigError(f"pipeline mode must be 'resize' or 'pad', got {mode!r}")
    if shard is not None:
        dataset = dataset.shard(*shard)
    per_pass = batches_per_pass or count_batches(dataset, batch_size)
    if per_pass < 1:
        raise ConfigError(f"fewer training pairs than one batch of {batch_size}")
    if cache:
        dataset = dataset.cache("" if cache is True else cache)
    fn = _sizer(size, mode, ignore_label, image_fill) if size is not None else None
    first_pass, skip = divmod(int(first_batch), per_pass)
    last_pass = (int(first_batch) + int(batches) - 1) // per_pass

    def one_pass(index):
        # reshuffle_each_iteration=False: the order is the seed's alone.
        data = dataset.shuffle(shuffle_buffer, seed=pass_seed(seed, index),
                               reshuffle_each_iteration=False)
        data = data.take(per_pass * batch_size)
        if index == first_pass and skip:
            data = data.skip(skip * batch_size)
        if size is not None:
            data = data.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
        return data.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)

    def chain(lo, hi):
        # Balanced concatenation: lazy (a pass is read only when the previous one
        # ends, so one iterator at a time fills the cache), depth log2(passes).
        if lo == hi:
            return one_pass(lo)
        mid = (lo + hi) // 2
        return chain(lo, mid).concatenate(chain(mid + 1, hi))

    stream = chain(first_pass, max(last_pass, first_pass)).take(batches)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if shard is not None
        else _auto_shard_policy(auto_shard))
    return stream.with_options(options).prefetch(tf.data.AUTOTUNE)
