"""`relic datagen report DIR [--out REPORT_DIR] [--verify]`: curation report of a corpus (Markdown + PNG).

``--verify`` checks every file of every episode against its size and sha256 first and lists EVERY
problem (missing, truncated, checksum mismatch, episodes missing from the manifest or the disk);
when there is any, it exits 1 without writing a report (`relic datagen build` with the same
config and --out re-captures the damaged episodes). A report is written all-or-nothing.
"""
from __future__ import annotations

from datagen.cli_common import CliError
from datagen.corpus.reader import Corpus
from datagen.report.report import write_report


def add_arguments(p) -> None:
    p.add_argument("corpus", help="corpus directory (built by `relic datagen build`)")
    p.add_argument("--out", default=None, help="report directory (default: CORPUS/report)")
    p.add_argument("--verify", action="store_true",
                   help="first checksum every file and list every problem; with any, exit 1 and write no report")


def run(args) -> int:
    import sys
    from pathlib import Path

    if not Path(args.corpus).is_dir():
        raise CliError(f"corpus {args.corpus} is not a folder; give the --out folder of `relic datagen build`")
    if args.verify:
        problems = Corpus.open(args.corpus).verify(progress=sys.stderr.isatty())
        for p in problems:
            print(f"  PROBLEM {p}")
        print(f"verify: {len(problems)} problem(s)")
        if problems:
            print("relic: error: the corpus is damaged: no report written; re-run `relic datagen build` with the "
                  "same --config and --out to re-capture the damaged episodes", file=sys.stderr)
            return 1

    path = write_report(args.corpus, args.out)
    print(f"report written to {path}")
    return 0
