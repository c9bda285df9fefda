"""The ImageNet VGG16 weights path: Keras cache, download with checksum, clear failures.

Served from a local HTTP server on 127.0.0.1; nothing leaves the machine.
"""

import hashlib
import os

import pytest

from fcn_tf.vgg16 import IMAGENET_WEIGHTS_FILE, resolve_imagenet_weights
from harness import LocalHTTPServer
from segcore.errors import ConfigError


@pytest.fixture
def server():
    serving = LocalHTTPServer()
    serving.files["/vgg16.h5"] = b"weights bytes " * 1000
    yield serving
    serving.close()


def test_download_into_the_keras_cache_with_checksum(server, tmp_path):
    body = server.files["/vgg16.h5"]
    md5 = hashlib.md5(body).hexdigest()
    cache = tmp_path / "keras"
    path = resolve_imagenet_weights(origin=server.url("/vgg16.h5"), file_hash=md5,
                                    cache_dir=str(cache))
    assert path == str(cache / "models" / IMAGENET_WEIGHTS_FILE)
    assert open(path, "rb").read() == body
    # Second call: found in the cache, no server needed.
    assert resolve_imagenet_weights(origin="http://127.0.0.1:9/none", cache_dir=str(cache)) == path


def test_checksum_mismatch_and_unreachable_server_say_what_to_do(server, tmp_path):
    with pytest.raises(ConfigError,
                       match="could not download the ImageNet VGG16 weights .*--weights PATH"):
        resolve_imagenet_weights(origin=server.url("/vgg16.h5"), file_hash="0" * 32,
                                 cache_dir=str(tmp_path / "a"))
    assert not os.path.exists(tmp_path / "a" / "models" / IMAGENET_WEIGHTS_FILE)
    with pytest.raises(ConfigError, match="could not download"):
        resolve_imagenet_weights(origin=server.url("/missing.h5"), cache_dir=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="not in the Keras cache"):
        resolve_imagenet_weights(cache_dir=str(tmp_path / "c"), download=False)
