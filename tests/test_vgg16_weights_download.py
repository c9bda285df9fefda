"""The ImageNet VGG16 weights path: Keras cache, download with checksum, clear failures.

Served from a local HTTP server on 127.0.0.1; nothing leaves the machine.
"""

import functools
import hashlib
import http.server
import os
import threading

import pytest

from fcn_tf.vgg16 import IMAGENET_WEIGHTS_FILE, resolve_imagenet_weights
from segcore.errors import ConfigError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "vgg16.h5").write_bytes(b"weights bytes " * 1000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_download_into_the_keras_cache_with_checksum(server, tmp_path):
    url, root = server
    md5 = hashlib.md5((root / "vgg16.h5").read_bytes()).hexdigest()
    cache = tmp_path / "keras"
    path = resolve_imagenet_weights(origin=f"{url}/vgg16.h5", file_hash=md5, cache_dir=str(cache))
    assert path == str(cache / "models" / IMAGENET_WEIGHTS_FILE)
    assert open(path, "rb").read() == (root / "vgg16.h5").read_bytes()
    # Second call: found in the cache, no server needed.
    assert resolve_imagenet_weights(origin="http://127.0.0.1:9/none", cache_dir=str(cache)) == path


def test_checksum_mismatch_and_unreachable_server_say_what_to_do(server, tmp_path):
    url, _ = server
    with pytest.raises(ConfigError, match="could not download the ImageNet VGG16 weights .*--weights PATH"):
        resolve_imagenet_weights(origin=f"{url}/vgg16.h5", file_hash="0" * 32,
                                 cache_dir=str(tmp_path / "a"))
    assert not os.path.exists(tmp_path / "a" / "models" / IMAGENET_WEIGHTS_FILE)
    with pytest.raises(ConfigError, match="could not download"):
        resolve_imagenet_weights(origin=f"{url}/missing.h5", cache_dir=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="not in the Keras cache"):
        resolve_imagenet_weights(cache_dir=str(tmp_path / "c"), download=False)
