"""`relic train teacher`: see relic_model.train.stage_teacher and relic_model/README.md (Training)."""
from __future__ import annotations

from relic_model.train.cli_common import add_train_arguments, run_one


def add_arguments(parser) -> None:
    add_train_arguments(parser)


def run(args) -> int:
    return run_one(args, "teacher")
