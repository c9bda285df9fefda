"""Elastic deformation of image, mask and weight map together (U-Net paper, Sec. 3.1).

"We generate smooth deformations using random displacement vectors on a coarse
3 by 3 grid. The displacements are sampled from a Gaussian distribution with 10
pixels standard deviation. Per-pixel displacements are then computed using
bicubic interpolation." (Ronneberger et al. 2015)

Implementation, all TensorFlow ops (runs in a `tf.function`, on any device):

* `random_displacement`: per example a [grid, grid, 2] array of N(0, sigma**2)
  displacements (dy, dx) in pixels, upsampled to [H, W, 2] with
  `tf.image.resize(method="bicubic")` (Keys cubic, half-pixel centres: the grid
  nodes sit at the centres of a grid x grid partition of the image).
* `apply_displacement`: output pixel (y, x) takes the input at (y + dy, x + dx);
  the image and the weight map are sampled bilinearly, the mask with the
  nearest neighbour (labels are never interpolated), all with the same field.
  Positions outside the image are mirrored (reflection without repeating the
  edge pixel, numpy's ``mode="reflect"``), like the paper's mirroring of the
  border context, so no pixel is left undefined. With ``fill="ignore"`` the
  mask instead gets `ignore_label` and the weight map 0 where the source
  position falls outside the image (the image is still mirrored).
* `elastic_deform` = one `random_displacement` draw applied by
  `apply_displacement`. sigma = 0 returns the inputs exactly.

Keras 3's `keras.layers.RandomElasticTransform` is not used: it smooths
per-pixel noise with a Gaussian (Simard et al. 2003) with strength and width
tied to the image size, not the paper's coarse grid with bicubic interpolation.

Randomness: `seed` = None uses the global generator (`tf.random.normal`); an int
or a shape-[2] integer tensor uses `tf.random.stateless_normal` (reproducible,
the same in eager and graph mode); `rng` = a `tf.random.Generator` draws from it.
"""

import tensorflow as tf

from segcore.errors import ConfigError

FILLS = ("reflect", "ignore")


def random_displacement(batch, height, width, grid=3, sigma=10.0, seed=None, rng=None):
    """Smooth random displacement fields [batch, height, width, 2] (dy, dx) in pixels."""
    if not isinstance(grid, int) or grid < 2:
        raise ConfigError(f"grid must be an integer >= 2, got {grid!r}")
    shape = tf.stack([batch, grid, grid, 2])
    if rng is not None:
        coarse = rng.normal(shape, dtype=tf.float32)
    elif seed is not None:
        seed = tf.convert_to_tensor(seed)
        if seed.shape.rank == 0:
            seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        coarse = tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)
    else:
        coarse = tf.random.normal(shape, dtype=tf.float32)
    coarse = coarse * tf.cast(sigma, tf.float32)
    return tf.image.resize(coarse, tf.stack([height, width]), method="bicubic")


def apply_displacement(images, masks=None, weights=None, displacement=None,
                       ignore_label=255, fill="reflect"):
    """Warp a batch with a displacement field [B, H, W, 2] (see module docstring).

    images [B, H, W, C] (any real or integer dtype, returned in its dtype),
    masks [B, H, W] or [B, H, W, 1] integer labels, weights [B, H, W] or
    [B, H, W, 1] float. Returns the warped tensors that were given, as a tuple
    (images, masks[, weights]), or images alone when masks is None.
    """
    if fill not in FILLS:
        raise ConfigError(f"fill must be one of {', '.join(FILLS)}; got {fill!r}")
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    y = rows + displacement[..., 0]
    x = cols + displacement[..., 1]
    last_row = tf.cast(height - 1, tf.float32)
    last_col = tf.cast(width - 1, tf.float32)
    outside = (y < 0) | (y > last_row) | (x < 0) | (x > last_col)
    y = _reflect(y, height)
    x = _reflect(x, width)

    warped_images = _cast_like(_bilinear(tf.cast(images, tf.float32), y, x), images.dtype)
    if masks is None:
        return warped_images
    results = [warped_images]

    masks = tf.convert_to_tensor(masks)
    warped_masks = _nearest(masks, y, x)
    if fill == "ignore":
        warped_masks = tf.where(_like(outside, warped_masks),
                                tf.cast(ignore_label, warped_masks.dtype), warped_masks)
    results.append(warped_masks)

    if weights is not None:
        weights = tf.convert_to_tensor(weights)
        squeeze = weights.shape.rank == 3
        w = weights[..., tf.newaxis] if squeeze else weights
        warped_weights = _bilinear(tf.cast(w, tf.float32), y, x)
        if fill == "ignore":
            warped_weights = tf.where(outside[..., tf.newaxis], 0.0, warped_weights)
        if squeeze:
            warped_weights = warped_weights[..., 0]
        warped_weights = tf.cast(warped_weights, weights.dtype)
        results.append(warped_weights)
    return tuple(results)


def elastic_deform(images, masks, weights=None, grid=3, sigma=10.0, ignore_label=255,
                   fill="reflect", seed=None, rng=None):
    """Random elastic deformation of a batch: one draw per example, shared by
    its image, mask and weight map.

    Args:
      images: [B, H, W, C] (or one [H, W, C] example).
      masks: [B, H, W] / [B, H, W, 1] labels (or [H, W] / [H, W, 1]).
      weights: optional per-pixel loss weights, shaped like masks.
      grid: coarse grid size (3 in the paper).
      sigma: standard deviation of the coarse displacements in pixels (10).
      ignore_label: mask value for pixels sampled from outside (fill="ignore").
      fill: "reflect" (default, mirror the image borders) or "ignore".
      seed, rng: randomness, see the module docstring.
    Returns:
      (images, masks) or (images, masks, weights), same shapes and dtypes.
    """
    images = tf.convert_to_tensor(images)
    single = images.shape.rank == 3
    if single:
        images = images[tf.newaxis]
        masks = tf.convert_to_tensor(masks)[tf.newaxis]
        weights = None if weights is None else tf.convert_to_tensor(weights)[tf.newaxis]
    if images.shape.rank != 4:
        raise ConfigError(
            f"images must be [batch, height, width, channels], got shape {images.shape}"
        )
    shape = tf.shape(images)
    displacement = random_displacement(shape[0], shape[1], shape[2], grid, sigma, seed, rng)
    results = apply_displacement(images, masks, weights, displacement, ignore_label, fill)
    if single:
        results = tuple(r[0] for r in results)
    return results


def _reflect(position, size):
    """Mirror real coordinates into [0, size - 1] (reflect, period 2 * (size - 1))."""
    last = tf.cast(size - 1, tf.float32)
    period = tf.maximum(2.0 * last, 1.0)
    q = tf.math.floormod(position, period)
    reflected = last - tf.abs(q - last)
    return tf.where(size > 1, reflected, tf.zeros_like(position))


def _bilinear(values, y, x):
    """Sample values [B, H, W, C] at real positions y, x [B, H', W'] inside the image."""
    shape = tf.shape(values)
    y0 = tf.floor(y)
    x0 = tf.floor(x)
    wy = (y - y0)[..., tf.newaxis]
    wx = (x - x0)[..., tf.newaxis]
    y0 = tf.cast(y0, tf.int32)
    x0 = tf.cast(x0, tf.int32)
    y1 = tf.minimum(y0 + 1, shape[1] - 1)
    x1 = tf.minimum(x0 + 1, shape[2] - 1)

    def at(yy, xx):
        return tf.gather_nd(values, tf.stack([yy, xx], axis=-1), batch_dims=1)

    top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx
    return top * (1.0 - wy) + bottom * wy


def _nearest(masks, y, x):
    """Nearest-neighbour sample of masks [B, H, W(, 1)] at y, x (round half up)."""
    yi = tf.cast(tf.floor(y + 0.5), tf.int32)
    xi = tf.cast(tf.floor(x + 0.5), tf.int32)
    return tf.gather_nd(masks, tf.stack([yi, xi], axis=-1), batch_dims=1)


def _like(outside, values):
    return outside[..., tf.newaxis] if values.shape.rank == 4 else outside


def _cast_like(values, dtype):
    if dtype.is_integer:
        return tf.cast(tf.round(values), dtype)
    return tf.cast(values, dtype)
