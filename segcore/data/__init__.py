"""The one dataset entry point: `segcore.data.load(name, data_dir, split)`.

Every reader returns a `tf.data.Dataset` of ``(image uint8 [H, W, 3], labels
uint8 [H, W])`` at the original resolution; resizing and cropping belong to the
pipeline (`segcore.data.pipeline`), never to the reader. `info(name)` gives the
dataset's descriptor (`DatasetInfo`).

Readers live in one module each and are imported when first used; a module
provides `INFO` and `read(data_dir, split, **options)`.
"""

import importlib

from segcore.data.info import IGNORE_LABEL, DatasetInfo
from segcore.errors import DataError

# name -> (module, info attribute, read function, needs a data_dir)
READERS = {
    "kitti_road": ("segcore.data.kitti_road", "INFO", "read", True),
    "voc2012": ("segcore.data.voc2012", "INFO", "read", True),
    "sbd": ("segcore.data.sbd", "INFO", "read", True),
    "coco_voc": ("segcore.data.coco_voc", "INFO", "read", True),
    "isbi2012": ("segcore.data.isbi2012", "INFO", "read", True),
    "camvid": ("segcore.data.camvid", "INFO", "read", True),
    "cityscapes": ("segcore.data.cityscapes", "INFO", "read", True),
    "oxford_iiit_pet": ("segcore.data.oxford_pet", "INFO", "read", True),
    "folder": ("segcore.data.folder", "INFO", "read", True),
    "synthetic_road": ("segcore.data.synthetic", "ROAD_INFO", "road_scenes", False),
    "synthetic_membranes": ("segcore.data.synthetic_membranes", "INFO", "read", False),
    "synthetic_shapes": ("segcore.data.synthetic_shapes", "INFO", "read", False),
}

GENERATED = tuple(name for name, spec in READERS.items() if not spec[3])


def _reader(name):
    if name not in READERS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(sorted(READERS))}")
    module_name, info_name, read_name, needs_dir = READERS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise DataError(f"dataset {name!r} has no reader in this version ({error})") from None
    return getattr(module, info_name), getattr(module, read_name), needs_dir


def info(name):
    """The `DatasetInfo` of dataset `name`."""
    return _reader(name)[0]


def load(name, data_dir=None, split="train", **options):
    """`tf.data.Dataset` of (image uint8 [H, W, 3], labels uint8 [H, W]) of one split."""
    _, read, needs_dir = _reader(name)
    import inspect

    accepted = inspect.signature(read).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            takes = ", ".join(list(accepted)[2 if needs_dir else 1:]) or "none"
            raise DataError(f"dataset {name!r} takes no option(s) {', '.join(unknown)}; "
                            f"it takes {takes}")
    if needs_dir:
        if not data_dir:
            raise DataError(f"dataset {name!r} needs --data-dir (where its files are)")
        return read(data_dir, split, **options)
    if data_dir:
        raise DataError(f"dataset {name!r} is generated; it takes no --data-dir (got {data_dir})")
    return read(split, **options)


__all__ = ["DatasetInfo", "GENERATED", "IGNORE_LABEL", "READERS", "info", "load"]
