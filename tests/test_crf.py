"""Dense CRF (segcore.crf): boundary snapping, identity without pairwise terms,
tf.function with dynamic shapes, golden checks against brute force, bad arguments."""

import numpy as np
import pytest
import tensorflow as tf

from segcore import crf
from segcore.errors import ConfigError

EDGE = 32  # columns 0..31 dark, 32..63 bright


def _edge_image(size=64, noise=0.0, seed=0):
    image = np.full((1, size, size, 3), 40.0, np.float32)
    image[:, :, EDGE:] = 200.0
    if noise:
        image += np.random.default_rng(seed).normal(0.0, noise, image.shape)
    return np.clip(image, 0, 255)


def _shifted_logits(size=64, shift=5):
    """Two classes; a soft ramp across the columns whose 50% point is `shift` px off the edge."""
    logits = np.zeros((1, size, size, 2), np.float32)
    logits[..., 1] = (np.arange(size) - (EDGE + shift) + 0.5) / 2.0
    return logits


def _brute_force_messages(image, q, bi_w, bi_xy_std, bi_rgb_std, pos_w, pos_xy_std):
    """The model of the module docstring over all pairs, in float64 numpy, for one image."""
    h, w, _ = image.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pos = np.stack([cols, rows], -1).reshape(-1, 2).astype(np.float64)
    rgb = image.reshape(-1, image.shape[-1]).astype(np.float64)
    qf = q.reshape(-1, q.shape[-1]).astype(np.float64)

    def sqdist(f):
        return ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)

    total = np.zeros_like(qf)
    for weight, k in (
        (bi_w, np.exp(-sqdist(pos) / (2 * bi_xy_std**2) - sqdist(rgb) / (2 * bi_rgb_std**2))),
        (pos_w, np.exp(-sqdist(pos) / (2 * pos_xy_std**2))),
    ):
        off_diagonal = k - np.eye(len(k))
        total += weight * (off_diagonal @ qf) / k.sum(1, keepdims=True)
    return total.reshape(q.shape)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _permutohedral_reference(features, values):
    """Loop-by-loop transcription of `Permutohedral::init` + `compute` (densecrf), float64."""
    n, d = features.shape
    scale = [np.sqrt(2.0 / 3.0) * (d + 1) / np.sqrt((i + 1) * (i + 2)) for i in range(d)]
    table, offsets, weights = {}, np.zeros((n, d + 1), int), np.zeros((n, d + 1))
    for k in range(n):
        elevated, sm = np.zeros(d + 1), 0.0
        for j in range(d, 0, -1):
            cf = features[k, j - 1] * scale[j - 1]
            elevated[j] = sm - j * cf
            sm += cf
        elevated[0] = sm
        rd = np.round(elevated / (d + 1))
        rem0, total = rd * (d + 1), int(rd.sum())
        rank = np.zeros(d + 1, int)
        for i in range(d):
            for j in range(i + 1, d + 1):
                if elevated[i] - rem0[i] < elevated[j] - rem0[j]:
                    rank[i] += 1
                else:
                    rank[j] += 1
        for i in range(d + 1):
            rank[i] += total
            if rank[i] < 0:
                rank[i] += d + 1
                rem0[i] += d + 1
            elif rank[i] > d:
                rank[i] -= d + 1
                rem0[i] -= d + 1
        bary = np.zeros(d + 2)
        for i in range(d + 1):
            v = (elevated[i] - rem0[i]) / (d + 1)
            bary[d - rank[i]] += v
            bary[d - rank[i] + 1] -= v
        bary[0] += 1.0 + bary[d + 1]
        for r in range(d + 1):
            key = tuple(int(rem0[i]) + (r if rank[i] <= d - r else r - (d + 1)) for i in range(d))
            offsets[k, r] = table.setdefault(key, len(table))
            weights[k, r] = bary[r]
    lattice = np.zeros((len(table), values.shape[1]))
    for k in range(n):
        for r in range(d + 1):
            lattice[offsets[k, r]] += weights[k, r] * values[k]
    for j in range(d + 1):
        blurred = lattice.copy()
        for key, index in table.items():
            n1, n2 = [c + 1 for c in key], [c - 1 for c in key]
            if j < d:
                n1[j], n2[j] = key[j] - d, key[j] + d
            for neighbour in (tuple(n1), tuple(n2)):
                if neighbour in table:
                    blurred[index] += 0.5 * lattice[table[neighbour]]
        lattice = blurred
    alpha = 1.0 / (1.0 + 2.0 ** -d)
    return alpha * np.einsum("nr,nrc->nc", weights, lattice[offsets])


# --- (1) the boundary moves onto the colour edge ---------------------------------


@pytest.mark.parametrize("shift", [5, -4])
@pytest.mark.parametrize("method", ["lattice", "exact"])
def test_boundary_snaps_to_colour_edge(shift, method):
    image, logits = _edge_image(noise=3.0), _shifted_logits(shift=shift)
    truth = np.broadcast_to(np.arange(64) >= EDGE, (1, 64, 64))
    assert (logits.argmax(-1) != truth).sum() == 64 * abs(shift)  # unary off by |shift| columns

    labels = crf.crf_refine_labels(image, logits, from_logits=True, method=method).numpy()

    first_foreground_column = labels.argmax(axis=2)  # per row
    np.testing.assert_array_equal(first_foreground_column, EDGE)
    assert (labels != truth).sum() == 0


def test_without_appearance_kernel_the_boundary_stays_put():
    logits = _shifted_logits(shift=5)
    labels = crf.crf_refine_labels(_edge_image(), logits, from_logits=True, bi_w=0.0).numpy()
    np.testing.assert_array_equal(labels.argmax(axis=2), EDGE + 5)


# --- (2) no pairwise terms: the unary comes back unchanged ------------------------


def test_zero_pairwise_weights_return_softmax_of_unary():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (2, 9, 11, 3)).astype(np.float32)
    logits = rng.normal(0, 2, (2, 9, 11, 5)).astype(np.float32)

    q = crf.dense_crf(image, logits, 10, from_logits=True, bi_w=0.0, pos_w=0.0).numpy()
    np.testing.assert_allclose(q, _softmax(logits.astype(np.float64)), atol=1e-6)
    np.testing.assert_array_equal(q.argmax(-1), logits.argmax(-1))

    probabilities = _softmax(logits.astype(np.float64)).astype(np.float32)
    q = crf.dense_crf(image, probabilities, 10, bi_w=0.0, pos_w=0.0).numpy()
    np.testing.assert_allclose(q, probabilities, atol=1e-6)
    labels = crf.crf_refine_labels(image, probabilities, 3, bi_w=0.0, pos_w=0.0).numpy()
    np.testing.assert_array_equal(labels, logits.argmax(-1))


# --- (3) tf.function with a dynamic signature -------------------------------------


def test_tf_function_dynamic_shapes_match_eager():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                  tf.TensorSpec([None, None, None, 4], tf.float32)])
    def refine(image, logits):
        return crf.dense_crf(image, logits, 3, from_logits=True, bi_xy_std=10.0, bi_rgb_std=20.0)

    rng = np.random.default_rng(2)
    for batch, height, width in [(2, 20, 27), (1, 33, 14)]:
        image = rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
        logits = rng.normal(0, 1, (batch, height, width, 4)).astype(np.float32)
        q = refine(image, logits).numpy()
        assert q.shape == (batch, height, width, 4)
        eager = crf.dense_crf(image, logits, 3, from_logits=True, bi_xy_std=10.0, bi_rgb_std=20.0)
        np.testing.assert_allclose(q, eager.numpy(), atol=1e-5)
        assert np.abs(q - _softmax(logits)).max() > 0.05  # the CRF did change something
    assert refine.experimental_get_tracing_count() == 1


def test_batch_images_do_not_interact():
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, (2, 12, 10, 3)).astype(np.float32)
    image[1] = 255 - image[0]
    logits = rng.normal(0, 1, (2, 12, 10, 3)).astype(np.float32)
    together = crf.dense_crf(image, logits, 5, from_logits=True, bi_xy_std=5.0, bi_rgb_std=30.0)
    for b in range(2):
        alone = crf.dense_crf(image[b:b + 1], logits[b:b + 1], 5, from_logits=True,
                              bi_xy_std=5.0, bi_rgb_std=30.0)
        np.testing.assert_allclose(together.numpy()[b], alone.numpy()[0], atol=1e-5)


# --- (4) golden checks against brute force -----------------------------------------

GOLDEN = [
    dict(bi_w=4.0, bi_xy_std=2.0, bi_rgb_std=20.0, pos_w=3.0, pos_xy_std=1.5),
    crf.DEEPLAB_CRF_PARAMS["deeplab_v1_largefov"],
    crf.DEEPLAB_CRF_PARAMS["deeplab_v2_resnet101"],
]


def _tiny_example(seed=4, height=5, width=6, classes=3):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 60, (1, height, width, 3)).astype(np.float32)
    image[:, :, width // 2:] += 40.0  # two colour regions, with overlap in the kernel range
    logits = rng.normal(0, 1.5, (1, height, width, classes)).astype(np.float32)
    return image, logits


@pytest.mark.parametrize("params", GOLDEN)
def test_exact_one_iteration_matches_brute_force(params):
    image, logits = _tiny_example()
    q0 = _softmax(logits[0].astype(np.float64))
    expected_messages = _brute_force_messages(image[0], q0, **params)
    expected_q1 = _softmax(logits[0] + expected_messages)

    messages = crf.pairwise_messages(image, q0[None], method="exact", **params).numpy()[0]
    np.testing.assert_allclose(messages, expected_messages, atol=2e-5)
    q1 = crf.dense_crf(image, logits, 1, from_logits=True, method="exact", **params).numpy()[0]
    np.testing.assert_allclose(q1, expected_q1, atol=1e-5)


def test_smoothness_kernel_is_exact_in_lattice_mode():
    image, logits = _tiny_example()
    q0 = _softmax(logits[0].astype(np.float64))
    expected = _brute_force_messages(image[0], q0, 0.0, 1.0, 1.0, 3.0, 3.0)
    got = crf.pairwise_messages(image, q0[None], bi_w=0.0, pos_w=3.0, pos_xy_std=3.0).numpy()[0]
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_lattice_filter_matches_permutohedral_transcription():
    """Image 0: (x, y, rgb) features of a small image (many shared vertices); image 1: random."""
    image, _, _ = _regions_example(height=6, width=7)
    features = np.concatenate([
        crf._bilateral_features(tf.constant(image), 3.0, 20.0).numpy(),
        np.random.default_rng(5).normal(0, 1.0, (1, 42, 5)).astype(np.float32)])
    values = np.random.default_rng(6).uniform(0, 1, (2, 42, 3)).astype(np.float32)
    lattice = crf._Lattice(tf.constant(features))
    got = lattice.filter(tf.constant(values)).numpy()
    for b in range(2):
        expected = _permutohedral_reference(features[b].astype(np.float64),
                                            values[b].astype(np.float64))
        np.testing.assert_allclose(got[b], expected, rtol=1e-4, atol=1e-5)
    # Without shared vertices there would be about 42 * 6 + 210 lattice points; image 0 has 71.
    assert int(lattice.m) < 42 * 6 * 1.5


def test_lattice_self_weight_bounds_the_operator_diagonal():
    rng = np.random.default_rng(6)
    features = rng.normal(0, 1.0, (1, 60, 5)).astype(np.float32)
    lattice = crf._Lattice(tf.constant(features))
    operator = lattice.filter(tf.eye(60)[None]).numpy()[0]  # column j: response to point j
    diagonal, self_weight = np.diag(operator), lattice.self_weight.numpy()
    assert np.all(self_weight <= diagonal + 1e-6)
    assert np.all(self_weight >= 0.8 * diagonal)
    assert 0.3 < self_weight.mean() < 0.8


def _regions_example(noise=3.0, seed=7, height=24, width=20):
    """Three colour regions with noise; a unary that is blurred and shifted 2 px off them."""
    rng = np.random.default_rng(seed)
    image = np.zeros((1, height, width, 3), np.float32)
    labels = np.zeros((height, width), int)
    image[:, :, :width // 2] = [200, 30, 30]
    image[:, :, width // 2:] = [20, 40, 220]
    labels[:, width // 2:] = 1
    image[:, height // 4:3 * height // 4, width // 5:3 * width // 5] = [30, 200, 40]
    labels[height // 4:3 * height // 4, width // 5:3 * width // 5] = 2
    image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.float32)
    shifted = np.roll(labels, (2, 2), (0, 1))
    logits = 3.0 * np.eye(3)[shifted] + rng.normal(0, 1.0, (height, width, 3))
    logits = tf.nn.avg_pool2d(logits[None].astype(np.float32), 3, 1, "SAME").numpy()
    return image, logits, labels


@pytest.mark.parametrize("params", GOLDEN)
def test_lattice_message_close_to_exact(params):
    """The documented error of the lattice: measured here against the all-pairs model."""
    image, logits, labels = _regions_example()
    q0 = _softmax(logits[0].astype(np.float64))
    appearance = {**params, "pos_w": 0.0}
    expected = _brute_force_messages(image[0], q0, **appearance) / params["bi_w"]
    got = crf.pairwise_messages(image, q0[None], **appearance).numpy()[0] / params["bi_w"]
    error = np.abs(got - expected)
    assert error.mean() < 0.01  # measured 0.003 .. 0.006
    assert error.max() < 0.15  # measured 0.04 .. 0.12
    assert got.min() > -1e-5  # the removed self-weight never exceeds the lattice's own

    exact = crf.crf_refine_labels(image, logits, from_logits=True, method="exact", **params)
    lattice = crf.crf_refine_labels(image, logits, from_logits=True, **params)
    exact, lattice = exact.numpy()[0], lattice.numpy()[0]
    assert np.mean(exact == lattice) > 0.97  # measured 0.977 .. 1.0
    unary_accuracy = np.mean(logits[0].argmax(-1) == labels)
    assert np.mean(exact == labels) > unary_accuracy + 0.1
    assert np.mean(lattice == labels) > unary_accuracy + 0.1


# --- (5) bad arguments -----------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    (dict(unary=np.zeros((1, 8, 9, 2))), "unary"),
    (dict(unary=np.zeros((2, 8, 8, 2))), "unary"),
    (dict(image=np.zeros((8, 8, 3))), "image"),
    (dict(iterations=-1), "iterations"),
    (dict(iterations=2.5), "iterations"),
    (dict(bi_xy_std=0.0), "bi_xy_std"),
    (dict(pos_w=-1.0), "pos_w"),
    (dict(method="meanshift"), "method"),
])
def test_bad_arguments_raise_config_error(kwargs, words):
    arguments = dict(image=np.zeros((1, 8, 8, 3), np.float32),
                     unary=np.full((1, 8, 8, 2), 0.5, np.float32), iterations=2)
    arguments.update(kwargs)
    with pytest.raises(ConfigError, match=words) as info:
        crf.dense_crf(arguments.pop("image"), arguments.pop("unary"), **arguments)
    assert "\n" not in str(info.value)
