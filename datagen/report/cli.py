"""`relic datagen report DIR [--out REPORT_DIR]`: curation report of a corpus (Markdown + PNG)."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("corpus", help="corpus directory (built by `relic datagen build`)")
    p.add_argument("--out", default=None, help="report directory (default: CORPUS/report)")
    p.add_argument("--verify", action="store_true", help="also checksum every file and list problems")


def run(args) -> int:
    from datagen.report.report import write_report

    path = write_report(args.corpus, args.out)
    print(f"report written to {path}")
    if args.verify:
        from datagen.corpus.reader import Corpus

        problems = Corpus.open(args.corpus).verify(progress=True)
        for p in problems:
            print(f"  PROBLEM {p}")
        print(f"verify: {len(problems)} problem(s)")
        return 1 if problems else 0
    return 0
