"""`python -m segcore.data download|check|info NAME ...`: thin command line.

    python -m segcore.data download voc2012 --data-dir data/
    python -m segcore.data check camvid --data-dir data/CamVid --split val
    python -m segcore.data check folder --data-dir my_data --option num_classes=3
    python -m segcore.data info cityscapes

Exit status: 0 success; 1 problems found / download impossible or failed;
2 bad arguments.
"""

import argparse
import logging
import sys

from segcore.errors import ConfigError, SegmentationError
from segcore.options import key_value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m segcore.data",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="download, verify and extract a dataset")
    get.add_argument("name")
    get.add_argument("--data-dir", required=True)
    get.add_argument("--allow-unverified", action="store_true",
                     help="download archives that have no published checksum")
    chk = commands.add_parser("check", help="read every pair once and report every problem")
    chk.add_argument("name")
    chk.add_argument("--data-dir", required=True)
    chk.add_argument("--split", action="append", default=None,
                     help="split to check (repeatable); default: every file once")
    chk.add_argument("--option", action="append", type=key_value, default=[],
                     help="reader option KEY=VALUE (Python literal), e.g. num_classes=3")
    inf = commands.add_parser("info", help="print a dataset's descriptor")
    inf.add_argument("name")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "download":
            from segcore.data import download

            download.download(args.name, args.data_dir, args.allow_unverified)
            return 0
        if args.command == "info":
            from segcore.data import info

            descriptor = info(args.name)
            for field in ("name", "num_classes", "ignore_label", "splits", "class_names",
                          "palette", "citation"):
                print(f"{field}: {getattr(descriptor, field)}")
            return 0
        from segcore.data import check

        options = dict(args.option)
        reports = check.check(args.name, args.data_dir, args.split, **options)
        for report in reports:
            print(report.text())
        problems = sum(len(r.problems) for r in reports)
        print(f"{problems} problem(s) found" if problems else "no problems found")
        return 1 if problems else 0
    except ConfigError as error:
        print(f"python -m segcore.data: error: {error}", file=sys.stderr)
        return 2
    except SegmentationError as error:
        print(f"python -m segcore.data: error: {error}", file=sys.stderr)
        return 1
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        print(f"python -m segcore.data: error: unknown --option for {args.name}: {error}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
