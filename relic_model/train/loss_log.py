"""Loss logging: CSV (always) and TensorBoard (only if the ``tensorboard`` package is installed).

``losses.csv`` columns: ``step`` (completed optimisation steps), ``time_s`` (training wall time
of the stage so far, resumed runs continue it), ``lr`` then one column per loss name, in the order
first seen. New names appearing later are written to a new file with the widened header (the old
rows are rewritten), so the CSV always parses with pandas. On resume, rows with step > the resumed
step are dropped (they belong to the interrupted tail); a fresh run replaces an old file.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from datagen.atomic import atomic_write


class LossLog:
    def __init__(self, path: str | os.PathLike, resume_step: int | None = None, tensorboard: bool = True):
        self.path = Path(path)
        self.rows: list[dict] = []
        self.cols: list[str] = ["step", "time_s", "lr"]
        if self.path.is_file() and resume_step is not None:
            with open(self.path, newline="") as fh:
                r = csv.DictReader(fh)
                self.cols = list(r.fieldnames or self.cols)
                self.rows = [row for row in r if int(float(row["step"])) <= resume_step]
            self._rewrite()
        elif self.path.is_file():  # a fresh (non-resumed) run starts a fresh log
            self.path.unlink()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
                self.tb = SummaryWriter(str(self.path.parent / "tb"))
            except Exception:
                self.tb = None

    def _rewrite(self) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=self.cols)
                w.writeheader()
                for row in self.rows:
                    w.writerow({c: row.get(c, "") for c in self.cols})

        atomic_write(self.path, write)

    def log(self, step: int, time_s: float, lr: float, losses: dict[str, float]) -> None:
        row = {"step": step, "time_s": round(time_s, 3), "lr": lr, **{k: float(v) for k, v in losses.items()}}
        new = [k for k in losses if k not in self.cols]
        self.rows.append(row)
        if new or not self.path.is_file():
            self.cols += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.cols).writerow({c: row.get(c, "") for c in self.cols})
        if self.tb is not None:
            for k, v in losses.items():
                self.tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
