"""Preflight of a dataset: read every pair once, report counts, sizes, the class
histogram and EVERY problem found, each naming its file.

`python -m segcore.data check NAME --data-dir DIR [--split S]` prints the report
and exits with status 1 when there is any problem. Problems found while
listing (missing partners, unreadable headers, size mismatches, wrong mask
modes) and while decoding (truncated files, label values or colours outside
the dataset's table) are all collected; the check never stops at the first.
"""

import collections
import dataclasses
import importlib

import numpy as np
import tensorflow as tf

from segcore.data import READERS, images
from segcore.errors import DataError

# Splits checked when none is given: those that hold every file of the dataset once.
DEFAULT_SPLITS = {
    "kitti_road": ("training",),
    "voc2012": ("train", "val"),
    "sbd": ("train", "val"),
    "isbi2012": ("all", "test"),
}


@dataclasses.dataclass
class Report:
    name: str
    split: str
    data_dir: str
    info: object
    pairs: int = 0
    listed: int = 0
    problems: list = dataclasses.field(default_factory=list)
    histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
    sizes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    notes: list = dataclasses.field(default_factory=list)  # reader facts (e.g. kept/dropped counts)

    @property
    def ok(self):
        return not self.problems

    def add(self, image, labels):
        self.pairs += 1
        self.sizes[(image.shape[1], image.shape[0])] += 1
        self.histogram += np.bincount(labels.reshape(-1), minlength=256)

    def text(self):
        lines = [f"{self.name} / {self.split} in {self.data_dir}: {self.pairs} of {self.listed} "
                 f"listed pair(s) read"]
        lines += [f"  {note}" for note in self.notes]
        if self.sizes:
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.sizes.most_common(5))
            widths = [w for w, _ in self.sizes]
            heights = [h for _, h in self.sizes]
            lines.append(f"  sizes (WxH): {common}{' ...' if len(self.sizes) > 5 else ''}; "
                         f"width {min(widths)}..{max(widths)}, "
                         f"height {min(heights)}..{max(heights)}")
        total = int(self.histogram.sum())
        if total:
            parts = []
            for value in np.nonzero(self.histogram)[0]:
                count = int(self.histogram[value])
                if value == self.info.ignore_label:
                    label = "ignore"
                elif value < self.info.num_classes:
                    label = f"{value} {self.info.class_names[value]}"
                else:
                    label = f"{value} (not a class)"
                parts.append(f"{label}: {count} ({100.0 * count / total:.2f}%)")
            lines.append("  class histogram (pixels): " + "; ".join(parts))
        lines.append(f"  problems: {len(self.problems)}" if self.problems else "  problems: none")
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def _module(name):
    if name not in READERS or not READERS[name][3]:
        raise DataError(f"check: unknown file-based dataset {name!r}; expected one of "
                        f"{', '.join(sorted(n for n, spec in READERS.items() if spec[3]))}")
    module_name, info_name = READERS[name][:2]
    module = importlib.import_module(module_name)
    return module, getattr(module, info_name)


def _scan_pairs(module, data_dir, split, options, report):
    """Readers without `index` (KITTI): list with `list_pairs`, decode with `decode_pair`."""
    pairs = module.list_pairs(data_dir, split, **options)
    report.listed = len(pairs)
    decode = tf.function(module.decode_pair)
    for image_path, mask_path in pairs:
        try:
            image, labels = decode(tf.constant(image_path), tf.constant(mask_path))
            report.add(image.numpy(), labels.numpy())
        except tf.errors.OpError as error:
            report.problems.append(str(images.data_error_from(error)))


def check_split(name, data_dir, split, **options):
    """`Report` of one split: every pair decoded once, every problem collected."""
    module, info = _module(name)
    report = Report(name, split, data_dir, info)
    try:
        if hasattr(module, "fill_report"):  # readers that are not file pairs (coco_voc)
            module.fill_report(report, data_dir, split, **options)
        elif hasattr(module, "index"):
            index = module.index(data_dir, split, **options)
            report.problems += index.problems
            report.listed = len(index.samples)
            for _, image, labels, problem in images.scan(index):
                if problem:
                    report.problems.append(problem)
                else:
                    report.add(image, labels)
        elif hasattr(module, "scan"):
            for image, labels, problem in module.scan(data_dir, split, **options):
                report.listed += 1
                if problem:
                    report.problems.append(problem)
                else:
                    report.add(image, labels)
        else:
            _scan_pairs(module, data_dir, split, options, report)
    except DataError as error:
        report.problems.append(str(error))
    if report.listed == 0 and not report.problems:
        report.problems.append(f"{name}: split {split!r} of {data_dir} has no pairs")
    return report


def check(name, data_dir, splits=None, **options):
    """[Report] of `splits` (default: the splits holding every file once)."""
    module, info = _module(name)
    if not splits and hasattr(module, "available_splits"):
        splits = module.available_splits(data_dir, **options)
    splits = splits or DEFAULT_SPLITS.get(name) or tuple(info.splits)
    return [check_split(name, data_dir, split, **options) for split in splits]
