"""Fully connected CRF post-processing, as DeepLab v1/v2 apply it, in TensorFlow.

Model: the dense CRF of Kraehenbuehl & Koltun, "Efficient Inference in Fully
Connected CRFs with Gaussian Edge Potentials" (NIPS 2011), eqs. (1)-(3)::

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)
    k(f_i, f_j) = w1 exp(-|p_i - p_j|^2 / 2 theta_alpha^2
                         - |I_i - I_j|^2 / 2 theta_beta^2)        (appearance)
                + w2 exp(-|p_i - p_j|^2 / 2 theta_gamma^2)       (smoothness)
    mu(l, l') = [l != l']                                        (Potts)

p is the pixel position (column, row) and I the colour in 0..255, as the
`densecrf` code shipped with DeepLab reads it from the uint8 image.

Inference is the paper's mean field (Algorithm 1): Q = softmax(-psi_u), then
`iterations` times::

    Q_i(l) <- softmax_l( -psi_u,i(l) + sum_m w_m * sum_{j != i} k_m(f_i, f_j) Q_j(l) / n_m(i) )

(With Potts, sum_l' mu(l, l') k Q_j(l') = k (1 - Q_j(l)) differs from
-k Q_j(l) by a per-pixel constant that the softmax removes.)

* The centre pixel is left out (j != i), as in the paper, which filters over
  all pixels and subtracts the pixel's own contribution k(f_i, f_i) Q_i(l).
* n_m(i) = sum_j k_m(f_i, f_j) (all j, the pixel itself included) is the
  per-pixel normalisation of the released code: `PottsPotential(...,
  per_pixel_normalization=true)` of `densecrf` v1, used by DeepLab's
  `refine_pascal_v4/dense_inference.cpp`, divides each filtered message by the
  filtered constant image. The published weights (w1 = 4, w2 = 3) are on this
  normalised scale, and it is always applied here: the paper's raw sums are not
  offered, because the lattice's amplitude (0.4 to 0.7 of the true Gaussian
  sum, measured) cancels only after normalisation.
* Unary: psi_u = -log p for probabilities (p clipped below at 1e-8), or
  psi_u = -logits with `from_logits=True` (DeepLab's `dense_inference.cpp` sets
  the unary to minus the network's score map).

Parameters (DeepLab defaults)
-----------------------------
DeepLab v1 (Chen et al., ICLR 2015, sec. 4) and v2 (TPAMI 2017, sec. 4.1) "use
the default values of w2 = 3 and sigma_gamma = 3", cross-validate w1,
sigma_alpha and sigma_beta on 100 val images (v1: w1 in [5, 10], sigma_alpha in
[50:10:100], sigma_beta in [3:1:10]; v2: w1 in [3:6], sigma_alpha in
[30:10:100], sigma_beta in [3:6]) and run 10 mean-field iterations. The defaults
here are the published DeepLab-LargeFOV (v1, VOC 2012) values: bi_w = 4,
bi_xy_std = 121, bi_rgb_std = 5, pos_w = 3, pos_xy_std = 3, 10 iterations.
`DEEPLAB_CRF_PARAMS` adds the DeepLab v2 model-page values (VGG-16:
4 / 65 / 3 / 2 / 2; ResNet-101: 4 / 67 / 3 / 3 / 1). The paper ranges were
checked in the paper texts; the per-model values come from the DeepLab project
pages as quoted in public code (not checked against the pages themselves).

Approximations (`method`)
-------------------------
* Smoothness kernel: exact. exp(-|p_i - p_j|^2 / 2 theta_gamma^2) is separable,
  so its sum over all pixels of the image is a separable Gaussian convolution
  with zero padding. The taps stop at |dx| <= ceil(4 theta_gamma) (12 px for
  theta_gamma = 3): the dropped weight is below exp(-8) = 3.4e-4 of the centre
  tap and about 6e-5 of the 1-D mass; images no larger than that are exact.
* Appearance kernel, `method="lattice"` (default): the permutohedral lattice of
  Adams, Baek & Davis (Eurographics 2010), i.e. the approximation the original
  `densecrf` code (and so DeepLab) uses, transcribed step for step from
  `permutohedral.cpp`: same feature scaling ("inv_std_dev" = sqrt(2/3) (d + 1)),
  splat to the d + 1 vertices of the enclosing simplex with barycentric
  weights, one [1/2, 1, 1/2] blur along each of the d + 1 lattice directions,
  slice, times alpha = 1 / (1 + 2^-d); d = 5 for (x, y, r, g, b). The hash
  table becomes a sorted array of int64 keys (with the image's batch index, so
  images never interact) and splat / blur / slice become sparse matrices.
  The lattice is not the exact Gaussian. What it changes, measured against
  the exact all-pairs model (tests/test_crf.py and the figures below): its
  kernel is narrower and compactly supported (relative to the centre and on
  average over directions: 0.52 instead of 0.61 at one feature-space std,
  0.04 instead of 0.14 at two, 0 beyond three), slightly asymmetric, and its
  amplitude is 0.4 to 0.7 of the Gaussian's, which the per-pixel
  normalisation cancels.
  The original code does not remove the pixel's own contribution; here it is
  removed, as the paper asks, with the lattice's own self-weight through the
  point's simplex (closed form, `_Lattice._self_weight`): a lower bound of the
  exact diagonal of the lattice operator, about 0.5 and short by 0.02 to 0.06
  on average on a VOC image. (Subtracting 1, the true Gaussian's value, would
  overshoot and make messages negative; not subtracting leaves a bias 3 to 4
  times larger.) Errors of the normalised appearance message per unit weight
  (range 0..1) against the exact model, on 24x20 three-region test images
  with colour noise of std 3 / 8 and the three `DEEPLAB_CRF_PARAMS`: mean
  0.003-0.006 / 0.008-0.024, max 0.04-0.12 / 0.18-0.36 (the largest at pixels
  with few similar neighbours). After 10 iterations the labels of the lattice
  and exact CRFs agree on 97.7-100% of pixels there and on 99.8% of a 100x75
  VOC image.
* `method="exact"`: the same model with the appearance sum over all pairs (an
  N x N kernel per image, N = H * W). Time and memory are O(N^2): it is the
  reference for small images and tests, not for 500x375 images.

Speed (`benchmarks/bench_crf.py` measures it): the lattice is built once per image
(a 375x500 VOC photo has about 30k lattice points; the build is a small part of the
time); each iteration costs one C-channel depthwise Gaussian blur (most of the time)
and 8 sparse products. The cost grows with the number of classes, the iterations and
the number of lattice points, i.e. with the image size and its colour diversity.

Shapes: `image` [B, H, W, K] (K colour channels, usually 3, static), values in
0..255; `unary` [B, H, W, C]. B, H and W may be dynamic: everything runs eagerly
and inside `tf.function` with a [None, None, None, 3] signature.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

from segcore.errors import ConfigError

# Published DeepLab CRF settings for PASCAL VOC 2012 (see the module docstring).
DEEPLAB_CRF_PARAMS = {
    "deeplab_v1_largefov": dict(bi_w=4.0, bi_xy_std=121.0, bi_rgb_std=5.0,
                                pos_w=3.0, pos_xy_std=3.0),
    "deeplab_v2_vgg16": dict(bi_w=4.0, bi_xy_std=65.0, bi_rgb_std=3.0,
                             pos_w=2.0, pos_xy_std=2.0),
    "deeplab_v2_resnet101": dict(bi_w=4.0, bi_xy_std=67.0, bi_rgb_std=3.0,
                                 pos_w=3.0, pos_xy_std=1.0),
}

METHODS = ("lattice", "exact")

_MIN_PROBABILITY = 1e-8  # probabilities are clipped below before the log


def dense_crf(image, unary, iterations=10, *, from_logits=False,
              bi_w=4.0, bi_xy_std=121.0, bi_rgb_std=5.0,
              pos_w=3.0, pos_xy_std=3.0, method="lattice"):
    """Mean-field inference in the DeepLab dense CRF; returns Q [B, H, W, C] (float32).

    Args:
      image: [B, H, W, K] colour image, 0..255 (uint8 or float).
      unary: [B, H, W, C] class probabilities, or logits if `from_logits`.
      iterations: number of mean-field updates (0 returns the softmax of -psi_u).
      from_logits: `unary` holds logits (psi_u = -logits), not probabilities
        (psi_u = -log p).
      bi_w, bi_xy_std, bi_rgb_std: w1, theta_alpha, theta_beta (appearance kernel).
      pos_w, pos_xy_std: w2, theta_gamma (smoothness kernel).
      method: "lattice" (permutohedral lattice, linear time) or "exact"
        (all pairs, O((H W)^2), small images only).
    """
    _check_arguments(image, unary, iterations, bi_w, bi_xy_std, bi_rgb_std,
                     pos_w, pos_xy_std, method)
    image = tf.cast(image, tf.float32)
    unary = tf.cast(unary, tf.float32)
    tf.debugging.assert_equal(
        tf.shape(image)[:3], tf.shape(unary)[:3],
        message="dense_crf: image and unary must have the same batch, height and width")
    if from_logits:
        neg_unary = unary
    else:
        neg_unary = tf.math.log(tf.maximum(unary, _MIN_PROBABILITY))
    q = tf.nn.softmax(neg_unary, axis=-1)
    if iterations == 0:
        return q
    messages = _build_messages(image, bi_w, bi_xy_std, bi_rgb_std, pos_w, pos_xy_std, method)

    def step(i, q):
        return i + 1, tf.nn.softmax(neg_unary + messages(q), axis=-1)

    _, q = tf.while_loop(lambda i, q: i < iterations, step, (tf.constant(0), q))
    return q


def crf_refine_labels(image, unary, iterations=10, **kwargs):
    """Label ids [B, H, W] (int32): argmax of `dense_crf(image, unary, iterations, **kwargs)`."""
    q = dense_crf(image, unary, iterations, **kwargs)
    return tf.argmax(q, axis=-1, output_type=tf.int32)


def pairwise_messages(image, q, *, bi_w=4.0, bi_xy_std=121.0, bi_rgb_std=5.0,
                      pos_w=3.0, pos_xy_std=3.0, method="lattice"):
    """The pairwise term added to -psi_u in a mean-field step, for beliefs `q` [B, H, W, C].

    sum_m w_m sum_{j != i} k_m(f_i, f_j) q_j(l) / n_m(i), as `dense_crf` computes
    it; exposed to check the approximation against a brute-force reference.
    """
    _check_arguments(image, q, 1, bi_w, bi_xy_std, bi_rgb_std, pos_w, pos_xy_std, method)
    messages = _build_messages(tf.cast(image, tf.float32), bi_w, bi_xy_std, bi_rgb_std,
                               pos_w, pos_xy_std, method)
    return messages(tf.cast(q, tf.float32))


# ----------------------------------------------------------------------------
# Argument checks


def _check_arguments(image, unary, iterations, bi_w, bi_xy_std, bi_rgb_std,
                     pos_w, pos_xy_std, method):
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) \
            or iterations < 0:
        raise ConfigError(f"iterations must be an int >= 0, got {iterations!r}")
    for name, value in (("bi_w", bi_w), ("pos_w", pos_w)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    for name, value in (("bi_xy_std", bi_xy_std), ("bi_rgb_std", bi_rgb_std),
                        ("pos_xy_std", pos_xy_std)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    image_shape = tf.TensorShape(getattr(image, "shape", np.shape(image)))
    unary_shape = tf.TensorShape(getattr(unary, "shape", np.shape(unary)))
    if image_shape.rank != 4:
        raise ConfigError(
            f"image must be [batch, height, width, channels], got shape {image_shape}")
    if unary_shape.rank != 4:
        raise ConfigError(f"unary must be [batch, height, width, classes], got shape {unary_shape}")
    if image_shape[-1] is None:
        raise ConfigError("image must have a static number of colour channels, got None")
    if not image_shape[:3].is_compatible_with(unary_shape[:3]):
        raise ConfigError(f"unary {unary_shape} must have the batch, height and width of "
                          f"image {image_shape}")


# ----------------------------------------------------------------------------
# Messages


def _build_messages(image, bi_w, bi_xy_std, bi_rgb_std, pos_w, pos_xy_std, method):
    """Precompute what does not depend on Q; return q -> pairwise term [B, H, W, C].

    Each term is (weight, filter over all pixels j, self-weight, normaliser):
    message = weight * (filter(q) - self_weight * q) / filter(1).
    """
    shape = tf.shape(image)
    batch, height, width = shape[0], shape[1], shape[2]
    ones = tf.ones([batch, height, width, 1])
    terms = []
    if pos_w > 0:
        taps = _gaussian_taps(pos_xy_std)

        def smoothness(q):
            return _spatial_blur(q, taps)

        terms.append((pos_w, smoothness, 1.0, smoothness(ones)))
    if bi_w > 0:
        features = _bilateral_features(image, bi_xy_std, bi_rgb_std)  # [B, N, d]
        if method == "exact":
            kernel = _exact_kernel(features)  # [B, N, N], diagonal (= 1) included
            flat_filter = lambda values: tf.linalg.matmul(kernel, values)  # noqa: E731
            self_weight = 1.0
        else:
            lattice = _Lattice(features)
            flat_filter = lattice.filter
            self_weight = tf.reshape(lattice.self_weight, [batch, height, width, 1])

        def appearance(q):
            c = tf.shape(q)[-1]
            out = flat_filter(tf.reshape(q, [batch, height * width, c]))
            return tf.reshape(out, [batch, height, width, c])

        terms.append((bi_w, appearance, self_weight, appearance(ones)))

    def messages(q):
        total = tf.zeros_like(q)
        for weight, filter_all, self_weight, norm in terms:
            total += weight * (filter_all(q) - self_weight * q) / norm  # sum over j != i
        return total

    return messages


def _gaussian_taps(std):
    radius = max(1, math.ceil(4.0 * std))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.exp(-0.5 * (x / std) ** 2).astype(np.float32)


def _spatial_blur(x, taps):
    """sum_j exp(-|p_i - p_j|^2 / 2 std^2) x_j over the image (zero outside), per channel."""
    k = len(taps)
    channels = tf.shape(x)[-1]
    column = tf.tile(tf.constant(taps.reshape(k, 1, 1, 1)), [1, 1, channels, 1])
    row = tf.tile(tf.constant(taps.reshape(1, k, 1, 1)), [1, 1, channels, 1])
    x = tf.nn.depthwise_conv2d(x, column, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(x, row, [1, 1, 1, 1], "SAME")


def _bilateral_features(image, xy_std, rgb_std):
    """[B, H*W, 2 + K]: (column, row) / xy_std and colour / rgb_std, row-major pixels."""
    shape = tf.shape(image)
    b, h, w = shape[0], shape[1], shape[2]
    rows, cols = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
    xy = tf.cast(tf.stack([cols, rows], axis=-1), tf.float32) / xy_std
    xy = tf.broadcast_to(xy[None], [b, h, w, 2])
    features = tf.concat([xy, image / rgb_std], axis=-1)
    return tf.reshape(features, [b, h * w, 2 + image.shape[-1]])


def _exact_kernel(features):
    """exp(-|f_i - f_j|^2 / 2) for all pairs [B, N, N]; distances in float64 (no cancellation)."""
    f = tf.cast(features, tf.float64)
    f = f - tf.reduce_mean(f, axis=1, keepdims=True)
    sq = tf.reduce_sum(tf.square(f), axis=-1)
    dist2 = sq[:, :, None] + sq[:, None, :] - 2.0 * tf.linalg.matmul(f, f, transpose_b=True)
    return tf.cast(tf.exp(-0.5 * tf.maximum(dist2, 0.0)), tf.float32)


class _Lattice:
    """Permutohedral lattice over the features of a batch of images (Adams et al. 2010).

    A transcription of `Permutohedral::init` / `compute` of the `densecrf` code
    into TF ops. The hash table becomes a sorted array of int64 keys (image
    index, lattice coordinates // (d + 1), remainder) searched with
    `searchsorted`; splatting, each of the d + 1 blur passes and slicing become
    sparse matrices (P points, M lattice points):

        filter(v) = alpha * S^T B_d ... B_0 S v,   S [M, P] barycentric weights,
        B_j = I + 1/2 (shift by +e_j) + 1/2 (shift by -e_j)   (missing neighbour: 0)
    """

    def __init__(self, features):  # [B, N, d]
        d = features.shape[-1]
        self.d = d
        self.alpha = 1.0 / (1.0 + 2.0 ** (-d))  # `permutohedral.cpp`'s "magic scaling constant"
        shape = tf.shape(features)
        self.batch, self.n = shape[0], shape[1]
        num_points = self.batch * self.n
        f = tf.reshape(features, [-1, d])

        # Elevate onto the hyperplane sum(x) = 0 in R^{d+1} (p.5 of Adams et al.).
        inv_std_dev = math.sqrt(2.0 / 3.0) * (d + 1)
        scale = np.array([inv_std_dev / math.sqrt((i + 1) * (i + 2)) for i in range(d)])
        elevate = np.vstack([np.ones(d), np.diag(-np.arange(d) - 2.0) + np.triu(np.ones((d, d)))])
        elevated = tf.linalg.matmul(f * tf.constant(scale, tf.float32),
                                    tf.constant(elevate.T, tf.float32))  # [P, d+1]

        # Closest remainder-0 point, then the rank of each coordinate's residual
        # (ties go to the later coordinate, as in the C++ loop).
        rounded = tf.round(elevated / (d + 1))
        rem0 = tf.cast(rounded, tf.int32) * (d + 1)
        total = tf.reduce_sum(tf.cast(rounded, tf.int32), axis=-1, keepdims=True)
        residual = elevated - tf.cast(rem0, tf.float32)
        later = tf.constant(np.triu(np.ones((d + 1, d + 1)), 1), tf.bool)  # [i, j]: j > i
        earlier = tf.constant(np.tril(np.ones((d + 1, d + 1)), -1), tf.bool)  # [i, j]: j < i
        r_i, r_j = residual[:, :, None], residual[:, None, :]
        rank = tf.reduce_sum(tf.cast((later & (r_j > r_i)) | (earlier & (r_j >= r_i)), tf.int32),
                             axis=-1) + total
        rem0 = tf.where(rank < 0, rem0 + (d + 1), tf.where(rank > d, rem0 - (d + 1), rem0))
        rank = tf.where(rank < 0, rank + (d + 1), tf.where(rank > d, rank - (d + 1), rank))

        # Barycentric coordinates (p.10 of Adams et al.).
        v = (elevated - tf.cast(rem0, tf.float32)) / (d + 1)
        bary = tf.reduce_sum(
            v[:, :, None] * (tf.one_hot(d - rank, d + 2) - tf.one_hot(d - rank + 1, d + 2)), axis=1)
        bary = tf.concat([bary[:, :1] + 1.0 + bary[:, d + 1:], bary[:, 1:d + 1]], axis=1)
        self.self_weight = self._self_weight(rank, bary)

        # The d + 1 enclosing vertices: key_r = rem0 + canonical[r, rank] (first d coordinates).
        canonical = np.array([[r if k <= d - r else r - (d + 1) for k in range(d + 1)]
                              for r in range(d + 1)], np.int32)
        keys = rem0[:, None, :d] + tf.transpose(
            tf.gather(tf.constant(canonical), rank[:, :d], axis=1), [1, 0, 2])  # [P, d+1, d]
        quotient = tf.math.floordiv(keys, d + 1)
        qmin = tf.reduce_min(quotient, axis=[0, 1])
        qmax = tf.reduce_max(quotient, axis=[0, 1])
        self._qlow = tf.cast(qmin, tf.int64) - 1  # a blur step moves a quotient by at most 1
        self._span = tf.cast(qmax - qmin, tf.int64) + 3
        log_size = (tf.math.log(tf.cast(self.batch, tf.float64))
                    + tf.reduce_sum(tf.math.log(tf.cast(self._span, tf.float64)))
                    + math.log(d + 1))
        tf.debugging.assert_less(
            log_size, tf.constant(62.0 * math.log(2.0), tf.float64),
            message="dense_crf: lattice keys do not fit in int64; "
                    "use larger bi_xy_std / bi_rgb_std")

        batch_id = tf.repeat(tf.range(self.batch, dtype=tf.int64), self.n * (d + 1))
        codes = self._encode(tf.reshape(keys, [-1, d]), batch_id)
        self.points = tf.sort(tf.unique(codes).y)  # [M] sorted lattice-point keys
        self.m = tf.size(self.points, out_type=tf.int64)
        rows = tf.searchsorted(self.points, codes, out_type=tf.int64)
        cols = tf.repeat(tf.range(tf.cast(num_points, tf.int64)), d + 1)
        # (`sparse_dense_matmul` accumulates entry by entry: no need to reorder.)
        self.splat = tf.sparse.SparseTensor(
            tf.stack([rows, cols], axis=1), tf.reshape(bary, [-1]),
            tf.stack([self.m, tf.cast(num_points, tf.int64)]))

        # One sparse blur matrix per lattice direction e_j = (1, .., 1, -d at j, 1, ..).
        point_keys, point_batch = self._decode(self.points)
        index = tf.range(self.m)
        self.blur = []
        for j in range(d + 1):
            step = np.ones(d, np.int32)
            if j < d:
                step[j] = -d
            rows, cols, values = [index], [index], [tf.ones_like(self.points, tf.float32)]
            for neighbour in (point_keys + step, point_keys - step):
                found, at = self._find(neighbour, point_batch)
                rows.append(tf.boolean_mask(index, found))
                cols.append(tf.boolean_mask(at, found))
                values.append(tf.fill(tf.shape(rows[-1]), 0.5))
            self.blur.append(tf.sparse.SparseTensor(
                tf.stack([tf.concat(rows, 0), tf.concat(cols, 0)], axis=1),
                tf.concat(values, 0), tf.stack([self.m, self.m])))

    def _self_weight(self, rank, bary):
        """The lattice's response at a point to its own splat, through its own simplex only.

        The simplex's vertices u_0 .. u_d form a cycle whose edge t (u_t, u_t+1)
        lies along lattice direction j with d - rank_j = t, so the blur restricted
        to the simplex is prod_j (I + 1/2 (E_t,t+1 + E_t+1,t)) in the order
        j = 0 .. d, and s = alpha w^T B w. Paths that leave the simplex through
        other lattice points and come back are not counted: s is a lower bound of
        the exact diagonal of the lattice operator (see the module docstring).
        """
        d = self.d
        x = bary
        for j in range(d + 1):
            t = d - rank[:, j]
            at_t = tf.one_hot(t, d + 1)
            at_next = tf.one_hot(tf.math.floormod(t + 1, d + 1), d + 1)
            x_t = tf.reduce_sum(x * at_t, axis=1, keepdims=True)
            x_next = tf.reduce_sum(x * at_next, axis=1, keepdims=True)
            x = x + 0.5 * (at_t * x_next + at_next * x_t)
        return self.alpha * tf.reduce_sum(bary * x, axis=1)

    def _encode(self, keys, batch_id):
        d = self.d
        # All coordinates of a lattice point are congruent modulo d + 1.
        remainder = tf.cast(tf.math.floormod(keys[:, 0], d + 1), tf.int64)
        digits = tf.cast(tf.math.floordiv(keys, d + 1), tf.int64) - self._qlow
        code = batch_id
        for i in range(d):
            code = code * self._span[i] + digits[:, i]
        return code * (d + 1) + remainder

    def _decode(self, codes):
        d = self.d
        remainder = codes % (d + 1)
        rest = codes // (d + 1)
        digits = []
        for i in reversed(range(d)):
            digits.append(rest % self._span[i])
            rest = rest // self._span[i]
        digits = tf.stack(digits[::-1], axis=1) + self._qlow
        keys = tf.cast(digits * (d + 1) + remainder[:, None], tf.int32)
        return keys, rest

    def _find(self, keys, batch_id):
        """(found, index) of lattice points with these keys."""
        codes = self._encode(keys, batch_id)
        at = tf.minimum(tf.searchsorted(self.points, codes, out_type=tf.int64), self.m - 1)
        return tf.gather(self.points, at) == codes, at

    def filter(self, values):
        """Lattice approximation of sum_j exp(-|f_i - f_j|^2 / 2) values_j; values [B, N, C]."""
        c = tf.shape(values)[-1]
        out = tf.sparse.sparse_dense_matmul(self.splat, tf.reshape(values, [-1, c]))
        for blur in self.blur:
            out = tf.sparse.sparse_dense_matmul(blur, out)
        out = tf.sparse.sparse_dense_matmul(self.splat, out, adjoint_a=True)
        return tf.reshape(self.alpha * out, [self.batch, self.n, c])
