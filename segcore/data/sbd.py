"""SBD (Semantic Boundaries Dataset, Hariharan et al., ICCV 2011) and VOC's train_aug.

SBD re-annotates 11,355 VOC 2011 images with the 20 VOC classes; as extracted
from `benchmark.tgz`:

    benchmark_RELEASE/dataset/img/<id>.jpg
    benchmark_RELEASE/dataset/cls/<id>.mat     GTcls.Segmentation: uint8 class ids 0..20
    benchmark_RELEASE/dataset/{train,val}.txt  8,498 / 2,857 ids

The .mat files are read with `scipy.io.loadmat` (in a `tf.numpy_function`).
SBD has no void band, so its masks never contain 255.

train_aug, the 10,582-image training set of FCN (Long et al.) and DeepLab:

    train_aug = (SBD train | SBD val | VOC2012 train) - VOC2012 val

(set operations on image ids, sorted). VOC train images keep VOC's own
annotation (`SegmentationClass`, with the void band); the others use SBD's
`cls/<id>.mat`. Images come from VOC's `JPEGImages` (which holds every SBD
image), else from SBD's `img/`. With the published lists this gives
8,498 + 2,857 = 11,355 SBD ids, 1,464 VOC train ids, minus the 1,449 VOC val
ids: 10,582 images, DeepLab's `train_aug.txt`.
"""

import os

from segcore.data import images
from segcore.data.info import DatasetInfo, pascal_palette
from segcore.data.voc2012 import CLASS_NAMES, FORMAT, read_list, voc_root
from segcore.errors import DataError

INFO = DatasetInfo(
    name="sbd",
    num_classes=21,
    class_names=CLASS_NAMES,
    palette=pascal_palette(21),
    splits={"train": 8498, "val": 2857},
    citation="Hariharan, Arbelaez, Bourdev, Maji, Malik, Semantic Contours from Inverse "
             "Detectors, ICCV 2011",
)

SBD_FORMAT = images.MaskFormat(
    dataset="sbd", kind="index", table=FORMAT.table, expected=FORMAT.expected)


def sbd_root(directory):
    """The SBD `dataset` folder under `directory` (itself, dataset/, benchmark_RELEASE/dataset/)."""
    for candidate in (directory, os.path.join(directory, "dataset"),
                      os.path.join(directory, "benchmark_RELEASE", "dataset")):
        if os.path.isdir(os.path.join(candidate, "cls")) and os.path.isfile(
                os.path.join(candidate, "train.txt")):
            return candidate
    return None


def find_sbd(data_dir, sbd_dir=None):
    """SBD's dataset folder: `sbd_dir`, else next to VOCdevkit (under `data_dir` or its parents)."""
    if sbd_dir is not None:
        root = sbd_root(sbd_dir)
        if root is None:
            raise DataError(f"sbd: no cls/ and train.txt under {sbd_dir} (expected "
                            "benchmark_RELEASE/dataset from benchmark.tgz)")
        return root
    candidates, path = [data_dir], os.path.abspath(voc_root(data_dir))
    for _ in range(3):
        path = os.path.dirname(path)
        candidates.append(path)
    for candidate in candidates:
        root = sbd_root(candidate)
        if root is not None:
            return root
    raise DataError(
        f"voc2012: split 'train_aug' needs SBD (benchmark_RELEASE/dataset from benchmark.tgz); "
        f"none found in {data_dir} or next to its VOCdevkit; pass sbd_dir=... or run "
        "python -m segcore.data download sbd --data-dir DIR"
    )


def train_aug_ids(voc_train, voc_val, sbd_train, sbd_val):
    """The train_aug rule: (SBD train | SBD val | VOC train) - VOC val, sorted."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def existing_pairs(ids, image_candidates, mask_candidates):
    """(pairs, missing ids): for each id the first existing file of `image_candidates(id)`
    and of `mask_candidates(id)` (VOC's own files before SBD's); ids lacking either are missing."""
    pairs, missing = [], []
    for item in ids:
        image = next((p for p in image_candidates(item) if os.path.isfile(p)), None)
        mask = next((p for p in mask_candidates(item) if os.path.isfile(p)), None)
        if image and mask:
            pairs.append((image, mask))
        else:
            missing.append(item)
    return pairs, missing


def train_aug_index(data_dir, sbd_dir=None, mask_dir="SegmentationClass"):
    voc = voc_root(data_dir)
    sbd = find_sbd(data_dir, sbd_dir)
    segmentation_lists = os.path.join(voc, "ImageSets", "Segmentation")
    ids = train_aug_ids(read_list(os.path.join(segmentation_lists, "train.txt")),
                        read_list(os.path.join(segmentation_lists, "val.txt")),
                        read_list(os.path.join(sbd, "train.txt")),
                        read_list(os.path.join(sbd, "val.txt")))
    pairs, missing = existing_pairs(
        ids,
        lambda item: [os.path.join(voc, "JPEGImages", f"{item}.jpg"),
                      os.path.join(sbd, "img", f"{item}.jpg")],
        lambda item: [os.path.join(voc, mask_dir, f"{item}.png"),
                      os.path.join(sbd, "cls", f"{item}.mat")])
    problems = []
    if missing:
        problems.append(f"voc2012: {len(missing)} train_aug id(s) without an image (JPEGImages, "
                        f"SBD img/) or a mask ({mask_dir}, SBD cls/): {', '.join(missing[:20])}")
    return images.index_pairs(FORMAT, pairs, problems,
                              description=f"split 'train_aug' of {voc} + {sbd}")


def index(data_dir, split="train"):
    if split not in INFO.splits:
        raise DataError(f"sbd: unknown split {split!r}; expected one of {sorted(INFO.splits)}")
    root = sbd_root(data_dir)
    if root is None:
        raise DataError(f"sbd: no cls/ and train.txt under {data_dir} (expected "
                        "benchmark_RELEASE/dataset from benchmark.tgz)")
    pairs, missing = existing_pairs(
        read_list(os.path.join(root, f"{split}.txt")),
        lambda item: [os.path.join(root, "img", f"{item}.jpg")],
        lambda item: [os.path.join(root, "cls", f"{item}.mat")])
    problems = []
    if missing:
        problems.append(f"sbd: {len(missing)} id(s) of {split}.txt without img/<id>.jpg or "
                        f"cls/<id>.mat in {root}: {', '.join(missing[:20])}")
    return images.index_pairs(SBD_FORMAT, pairs, problems, description=f"split {split!r} of {root}")


def read(data_dir, split="train", skip_bad=False):
    """SBD alone: (image, labels) of `split` ("train" or "val" of SBD's own lists)."""
    return images.pairs_dataset(index(data_dir, split), skip_bad, "sbd")
