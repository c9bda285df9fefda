"""SavedModel for serving: signatures, fresh-process round trip, size."""

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fcn_tf import build_fcn, preprocess
from segcore.errors import SegmentationError
from segcore.export import (
    DEFAULT_WARMUP_SIZE,
    IMAGE_SIGNATURES,
    SIGNATURES,
    export_saved_model,
    load_serving,
    read_warmup_requests,
    saved_model_bytes,
)
from segcore.inference import make_predict_fn
from segcore.task import SegmentationTask


def png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    network = build_fcn("fcn8s", 3, dropout=0.0, width=0.125)
    rng = np.random.default_rng(0)
    for name in ("score_fr", "score_pool4", "score_pool3"):  # non-trivial outputs
        layer = network.get_layer(name)
        layer.set_weights([rng.normal(0, 0.01, w.shape).astype("float32")
                           for w in layer.get_weights()])
    task = SegmentationTask(network, preprocess)
    path = str(tmp_path_factory.mktemp("export") / "saved_model")
    export_saved_model(path, make_predict_fn(task), network.variables, 3,
                       ("a", "b", "c"), ((0, 0, 0), (255, 0, 0), (0, 0, 255)))
    images = rng.integers(0, 256, (2, 45, 71, 3)).astype(np.uint8)
    expected = make_predict_fn(task)(images).numpy()
    return path, network, images, expected


def test_size_is_about_the_parameter_bytes(exported):
    path, network, _, _ = exported
    parameters = sum(int(np.prod(v.shape)) * 4 for v in network.variables)
    assert saved_model_bytes(path) <= 1.1 * parameters


@pytest.mark.slow
def test_fresh_process_gives_the_in_memory_outputs(exported, tmp_path):
    path, _, images, expected = exported
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "a.png").write_bytes(png_bytes(images[0]))
    (tmp_path / "b.png").write_bytes(png_bytes(images[1]))
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({path!r})
        images = np.load({str(tmp_path / 'images.npy')!r})
        out = model.signatures["serving_default"](images=tf.constant(images))
        data = [open({str(tmp_path / 'a.png')!r}, "rb").read(),
                open({str(tmp_path / 'b.png')!r}, "rb").read()]
        encoded = model.signatures["serving_bytes"](images=tf.constant(data))
        meta = model.signatures["metadata"]()
        np.savez({str(tmp_path / 'out.npz')!r}, probabilities=out["probabilities"].numpy(),
                 class_ids=out["class_ids"].numpy(),
                 bytes_probabilities=encoded["probabilities"].numpy(),
                 names=meta["class_names"].numpy(), num_classes=meta["num_classes"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=600)
    out = np.load(tmp_path / "out.npz", allow_pickle=True)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["class_ids"], expected.argmax(-1))
    np.testing.assert_allclose(out["bytes_probabilities"], expected, atol=1e-5)
    assert out["probabilities"].shape == (2, 45, 71, 3) and out["class_ids"].dtype == np.uint8
    assert list(out["names"]) == [b"a", b"b", b"c"] and int(out["num_classes"]) == 3
    assert len(np.unique(out["class_ids"])) > 1  # the check is not of a constant output


def test_signatures_outputs_and_warmup_file(exported):
    path = exported[0]
    loaded = load_serving(path)
    assert sorted(loaded.signatures) == sorted(SIGNATURES)
    for name in IMAGE_SIGNATURES:
        outputs = loaded.signatures[name].structured_outputs
        assert ("probabilities" in outputs) == (name in ("serving_default", "serving_bytes")), name
    assert loaded.signatures["serving_bytes_png"].structured_outputs["class_ids_png_bytes"].dtype \
        == tf.string
    logs = read_warmup_requests(path)
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == \
        list(IMAGE_SIGNATURES)
    shape = tf.make_ndarray(logs[0].predict_log.request.inputs["images"]).shape
    assert shape == (1, *DEFAULT_WARMUP_SIZE, 3)


def test_any_size_in_the_same_saved_model(exported):
    path = exported[0]
    serve = load_serving(path).signatures["serving_default"]
    for size in ((17, 33), (64, 48)):
        out = serve(images=tf.zeros((1, *size, 3), tf.uint8))
        assert out["class_ids"].shape == (1, *size)
        np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


def test_not_a_saved_model_or_wrong_signature(tmp_path):
    with pytest.raises(SegmentationError, match="not a SavedModel directory"):
        load_serving(str(tmp_path))

    class Bare(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def double(self, x):
            return 2 * x

    module = Bare()
    tf.saved_model.save(module, str(tmp_path / "bare"), signatures={"double": module.double})
    with pytest.raises(SegmentationError, match="has no signature serving_default .*found double"):
        load_serving(str(tmp_path / "bare"))
