"""`python -m segcore.data download`: a local HTTP server (a thread) serves small archives."""

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from harness import LocalHTTPServer
from segcore import data
from segcore.data import download
from segcore.data.__main__ import main
from segcore.errors import DataError


@pytest.fixture
def server():
    serving = LocalHTTPServer()
    yield serving
    serving.close()


def folder_dataset_tar(mode="w:gz"):
    """A tar of toy/images + toy/masks (a `folder` dataset of two pairs) and the arrays."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    arrays = {}
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for stem in ("a", "b"):
            image = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
            mask = rng.integers(0, 2, (6, 9), dtype=np.uint8)
            arrays[stem] = (image, mask)
            for folder, array in (("images", image), ("masks", mask)):
                png = io.BytesIO()
                Image.fromarray(array).save(png, format="PNG")
                info = tarfile.TarInfo(f"toy/{folder}/{stem}.png")
                info.size = len(png.getvalue())
                tar.addfile(info, io.BytesIO(png.getvalue()))
    return buffer.getvalue(), arrays


def md5(payload):
    return "md5:" + hashlib.md5(payload).hexdigest()


def sha256(payload):
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def toy_source(server, payload, checksum, name="toy.tar.gz", mirrors=()):
    server.files[f"/{name}"] = payload
    urls = tuple(mirrors) + (server.url(f"/{name}"),)
    return download.Source(resources=(download.Resource(urls, name, checksum),), data_dir="toy")


def test_download_verify_extract_end_to_end(server, tmp_path, monkeypatch, capsys):
    payload, arrays = folder_dataset_tar()
    monkeypatch.setitem(download.SOURCES, "toy", toy_source(server, payload, md5(payload)))
    assert main(["download", "toy", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"toy: ready; use --data-dir {tmp_path / 'toy'}" in out
    assert (tmp_path / "downloads" / "toy.tar.gz").read_bytes() == payload
    assert not (tmp_path / "downloads" / "toy.tar.gz.part").exists()
    decoded = list(data.load("folder", str(tmp_path / "toy"), "all").as_numpy_iterator())
    for (image, mask), stem in zip(decoded, ("a", "b"), strict=True):
        np.testing.assert_array_equal(image, arrays[stem][0])
        np.testing.assert_array_equal(mask, arrays[stem][1])
    # a second run neither downloads nor extracts again
    requests = len(server.requests)
    assert main(["download", "toy", "--data-dir", str(tmp_path)]) == 0
    assert len(server.requests) == requests
    assert "toy.tar.gz already extracted" in capsys.readouterr().out


def test_interrupted_download_resumes_with_range(server, tmp_path):
    payload = os.urandom(300_000)
    source = toy_source(server, payload, sha256(payload), name="blob.bin")
    source = download.Source(resources=(dataclasses.replace(source.resources[0], extract=False),))
    server.drop["/blob.bin"] = 100_000  # the first answer stops after 100,000 bytes
    download.download("blob", str(tmp_path), sources={"blob": source}, backoff=0,
                      out=lambda _: None)
    assert (tmp_path / "downloads" / "blob.bin").read_bytes() == payload
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=100000-")]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    payload = os.urandom(50_000)
    source = toy_source(server, payload, md5(payload), name="blob.bin")
    source = download.Source(resources=(dataclasses.replace(source.resources[0], extract=False),))
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "blob.bin.part").write_bytes(payload[:20_000])
    download.download("blob", str(tmp_path), sources={"blob": source}, out=lambda _: None)
    assert server.requests == [("/blob.bin", "bytes=20000-")]
    assert (tmp_path / "downloads" / "blob.bin").read_bytes() == payload

    # a server that ignores Range: the .part is rewritten from the start
    server.requests.clear()
    server.ignore_range.add("/blob.bin")
    os.remove(tmp_path / "downloads" / "blob.bin")
    (tmp_path / "downloads" / "blob.bin.part").write_bytes(b"x" * 30_000)
    download.download("blob", str(tmp_path), sources={"blob": source}, out=lambda _: None)
    assert server.requests == [("/blob.bin", "bytes=30000-")]
    assert (tmp_path / "downloads" / "blob.bin").read_bytes() == payload


def test_checksum_mismatch_is_refused_and_the_file_deleted(server, tmp_path):
    payload, _ = folder_dataset_tar()
    wrong = "md5:" + "0" * 32
    source = toy_source(server, payload, wrong)
    with pytest.raises(DataError) as caught:
        download.download("toy", str(tmp_path), sources={"toy": source}, out=lambda _: None)
    assert str(caught.value) == (
        f"toy.tar.gz: checksum mismatch: got {hashlib.md5(payload).hexdigest()}, expected {wrong} "
        f"(downloaded from {server.url('/toy.tar.gz')}); the file was deleted, run again to retry")
    assert os.listdir(tmp_path / "downloads") == []
    assert not (tmp_path / "toy").exists()


def test_a_dead_mirror_falls_back_to_the_next(server, tmp_path):
    payload, _ = folder_dataset_tar()
    source = toy_source(server, payload, md5(payload), mirrors=(server.url("/missing.tar.gz"),))
    download.download("toy", str(tmp_path), sources={"toy": source}, out=lambda _: None)
    assert [path for path, _ in server.requests] == ["/missing.tar.gz", "/toy.tar.gz"]
    assert sorted(os.listdir(tmp_path / "toy" / "masks")) == ["a.png", "b.png"]


def test_unverified_archives_need_the_flag(server, tmp_path, monkeypatch, capsys, caplog):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("repo/CamVid/readme.txt", "hello")
    payload = buffer.getvalue()
    monkeypatch.setitem(download.SOURCES, "toyzip", toy_source(server, payload, None, "toy.zip"))
    assert main(["download", "toyzip", "--data-dir", str(tmp_path)]) == 1
    assert "no published checksum" in capsys.readouterr().err
    assert server.requests == []
    assert main(["download", "toyzip", "--data-dir", str(tmp_path), "--allow-unverified"]) == 0
    assert (tmp_path / "repo" / "CamVid" / "readme.txt").read_text() == "hello"
    assert hashlib.sha256(payload).hexdigest() in caplog.text


def malicious_tar(kind):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        ok = tarfile.TarInfo("data/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if kind == "dotdot":
            info = tarfile.TarInfo("data/../../evil.txt")
        elif kind == "absolute":
            info = tarfile.TarInfo("/tmp/segcore-evil.txt")
        elif kind == "symlink":
            info = tarfile.TarInfo("data/link")
            info.type, info.linkname = tarfile.SYMTYPE, "../../.."
        elif kind == "absolute_symlink":
            info = tarfile.TarInfo("data/link")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        elif kind == "hardlink":
            info = tarfile.TarInfo("data/hard")
            info.type, info.linkname = tarfile.LNKTYPE, "../outside.txt"
        elif kind == "device":
            info = tarfile.TarInfo("data/dev")
            info.type = tarfile.CHRTYPE
        if info.type == tarfile.REGTYPE:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        else:
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("kind, why", [
    ("dotdot", "path 'data/../../evil.txt' contains '..'"),
    ("absolute", "absolute path '/tmp/segcore-evil.txt'"),
    ("symlink", "symlink 'data/link' -> '../../..' points outside"),
    ("absolute_symlink", "symlink 'data/link' -> '/etc' points outside"),
    ("hardlink", "hard link 'data/hard' -> '../outside.txt' points outside"),
    ("device", "'data/dev' is a device or FIFO"),
])
def test_malicious_tar_is_rejected_before_anything_is_written(tmp_path, kind, why):
    archive = tmp_path / "evil.tar"
    archive.write_bytes(malicious_tar(kind))
    target = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        download.safe_extract(str(archive), str(target))
    message = str(caught.value)
    assert message.startswith(f"{archive}: unsafe archive member: {why}")
    assert message.endswith(f"refusing to extract into {target} (nothing was extracted)")
    assert os.listdir(target) == []
    assert not os.path.exists("/tmp/segcore-evil.txt")


def test_malicious_zip_is_rejected(tmp_path):
    for name, why in (("../evil.txt", "contains '..'"), ("/abs/evil.txt", "absolute path"),
                      ("a\\..\\..\\evil.txt", "contains '..'")):
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "ok")
            zf.writestr(name, "evil")
        with pytest.raises(DataError, match=f"unsafe archive member: .*{why}"):
            download.safe_extract(str(archive), str(tmp_path / "out"))
        assert os.listdir(tmp_path / "out") == []


def test_malicious_archive_from_the_server_is_refused(server, tmp_path, monkeypatch, capsys):
    payload = malicious_tar("dotdot")
    monkeypatch.setitem(download.SOURCES, "evil",
                        toy_source(server, payload, md5(payload), "evil.tar"))
    assert main(["download", "evil", "--data-dir", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "evil.tar: unsafe archive member: path 'data/../../evil.txt' contains '..'" in err
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "data").exists()
    assert not (tmp_path / "d" / ".extracted").exists()


def test_datasets_needing_registration_print_instructions(tmp_path, capsys):
    assert main(["download", "kitti_road", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "kitti_road cannot be downloaded by a script" in err and "data_road.zip" in err
    assert main(["download", "cityscapes", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "gtFine_trainvaltest.zip" in err and "leftImg8bit_trainvaltest.zip" in err
    assert main(["download", "nope", "--data-dir", str(tmp_path)]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_published_sources():
    voc = download.SOURCES["voc2012"].resources[0]
    assert voc.urls[0] == "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
    assert voc.checksum == "md5:6cd6e144f989b92b3379bac3b3de84fd"
    sbd = download.SOURCES["sbd"].resources[0]
    assert sbd.filename == "benchmark.tgz"
    assert sbd.checksum == "md5:82b4d87ceb2ed10f6038a1cba92111cb"
    assert download.SOURCES["camvid"].resources[0].checksum is None
    assert download.SOURCES["oxford_iiit_pet"].tfds_name == "oxford_iiit_pet"


def coco_archives(coco_dir):
    """Zips shaped like COCO 2017's: annotations/ (a JSON of 3 real images), train2017/,
    val2017/."""
    with open(os.path.join(coco_dir, "annotations", "instances_train2017.json")) as f:
        content = json.load(f)
    names = ["000000000030.jpg", "000000000042.jpg", "000000000086.jpg"]
    ids = {image["id"] for image in content["images"] if image["file_name"] in names}
    small = dict(content, images=[i for i in content["images"] if i["id"] in ids],
                 annotations=[a for a in content["annotations"] if a["image_id"] in ids])
    archives = {}
    for split in ("train", "val"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name in names:
                zf.write(os.path.join(coco_dir, "train2017", name), f"{split}2017/{name}")
        archives[f"{split}2017.zip"] = buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for split in ("train", "val"):
            zf.writestr(f"annotations/instances_{split}2017.json", json.dumps(small))
    archives["annotations_trainval2017.zip"] = buffer.getvalue()
    return archives


def test_coco_voc_download_from_a_local_server(server, tmp_path, monkeypatch, capsys,
                                               datasets_root):
    archives = coco_archives(os.path.join(datasets_root, "coco"))
    resources = []
    for resource in download.SOURCES["coco_voc"].resources:
        payload = archives[resource.filename]
        server.files[f"/{resource.filename}"] = payload
        resources.append(dataclasses.replace(resource, urls=(server.url(f"/{resource.filename}"),),
                                             checksum=sha256(payload)))
    server.drop["/train2017.zip"] = 5000  # the first answer stops early: resumed with Range
    monkeypatch.setitem(download.SOURCES, "coco_voc",
                        dataclasses.replace(download.SOURCES["coco_voc"],
                                            resources=tuple(resources)))
    monkeypatch.setattr(download.time, "sleep", lambda _: None)
    assert main(["download", "coco_voc", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"coco_voc: ready; use --data-dir {tmp_path / 'coco'}" in out
    assert ("/train2017.zip", "bytes=5000-") in server.requests
    assert sorted(os.listdir(tmp_path / "coco")) == ["annotations", "train2017", "val2017"]
    for split in ("train", "val"):
        pairs = list(data.load("coco_voc", str(tmp_path / "coco"), split).as_numpy_iterator())
        assert len(pairs) == 3
        assert pairs[2][0].shape == (640, 512, 3)  # 000000000086.jpg, greyscale, as RGB
    assert main(["download", "coco_voc", "--data-dir", str(tmp_path)]) == 0
    assert "train2017.zip already extracted" in capsys.readouterr().out


def test_coco_sources_are_the_official_2017_archives_with_tfds_checksums():
    import tensorflow_datasets

    recorded = os.path.join(os.path.dirname(tensorflow_datasets.__file__), "url_checksums",
                            "coco.txt")
    with open(recorded) as f:
        tfds_sha256 = {line.split()[0]: line.split()[2] for line in f if line.strip()}
    resources = download.SOURCES["coco_voc"].resources
    assert [r.filename for r in resources] == [
        "annotations_trainval2017.zip", "val2017.zip", "train2017.zip"]
    assert resources[2].urls == ("http://images.cocodataset.org/zips/train2017.zip",)
    for resource in resources:
        assert resource.checksum == f"sha256:{tfds_sha256[resource.urls[0]]}"
        assert resource.into == "coco"
    assert download.SOURCES["coco_voc"].data_dir == "coco"
