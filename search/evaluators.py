"""Accuracy evaluators: score a batch of candidate networks (top-1 accuracy in %).

The thesis trained 10 candidates in parallel, so the interface scores a *batch*:
`evaluate([(spec, resolution), ...]) -> [accuracy, ...]`, and says how many it wants at a
time (`batch_size`; None = any number). The search saves its state after every batch, so a
per-network evaluator (batch_size 1) never loses a finished evaluation to an interruption.

- `table:PATH`: a CSV of recorded accuracies with columns `fingerprint`, `resolution`,
  `accuracy` (optional `network`, ignored); a network missing from it is an error naming it.
- `py:MODULE:FUNCTION[,timeout=SECONDS]`: `FUNCTION(network_dict) -> float %`, called per
  network; the user's own code, loaded and called as `search/pycall.py` says.

An evaluator that raises or returns NaN/inf stops the search with a one-line error
(`SourceError`); the search keeps the trace up to that point.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

from latency_lab.fileio import read_text
from latency_lab.spec import NetworkSpec
from latency_lab.search.sources import SourceError, check_value, load_py_callable, network_dict

Point = tuple[NetworkSpec, int]

# An accuracy here is a top-1 accuracy in percent: anything outside 0..100 is a unit mistake
# (a fraction would pass; a score of another kind, e.g. a zero-shot proxy, is not an accuracy).
ACCURACY_MIN, ACCURACY_MAX = 0.0, 100.0


class Evaluator:
    """Interface: accuracies (%) of a batch of (network, resolution) points, in order."""

    batch_size: int | None = None

    def evaluate(self, points: Sequence[Point]) -> list[float]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class PyEvaluator(Evaluator):
    """`py:MODULE:FUNCTION`, called once per network with its JSON dict."""

    batch_size = 1

    def __init__(self, target: str):
        self.target = target
        self.func = load_py_callable(target, f"evaluator py:{target}")

    def evaluate(self, points: Sequence[Point]) -> list[float]:
        out = []
        for spec, res in points:
            value = self.func(network_dict(spec, res), f"{spec.name} ({spec.fingerprint}) at {res}")
            out.append(check_value(value, f"evaluator py:{self.target}", spec, res,
                                   positive=False, bounds=(ACCURACY_MIN, ACCURACY_MAX)))
        return out

    def describe(self) -> str:
        return f"py:{self.target}"


class TableEvaluator(Evaluator):
    """`table:PATH`: recorded accuracies keyed by (fingerprint, resolution)."""

    REQUIRED = ("fingerprint", "resolution", "accuracy")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # read as text first: a UTF-8 byte-order mark (Excel's CSV) is dropped, other bytes
        # that are not UTF-8 are one line naming the file
        text = read_text(self.path, "accuracy table", SourceError)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in self.REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SourceError(f"accuracy table {self.path} lacks column(s) "
                              f"{', '.join(missing)} (needs {', '.join(self.REQUIRED)})")
        self.rows: dict[tuple[str, int], float] = {}
        try:
            for line, row in enumerate(reader, start=2):
                try:
                    key = (row["fingerprint"].strip(), int(row["resolution"]))
                    acc = float(row["accuracy"])
                except (TypeError, ValueError, AttributeError):
                    raise SourceError(f"accuracy table {self.path} line {line}: "
                                      f"unreadable row {dict(row)}") from None
                if not (math.isfinite(acc) and ACCURACY_MIN <= acc <= ACCURACY_MAX):
                    raise SourceError(f"accuracy table {self.path} line {line}: accuracy "
                                      f"{row['accuracy']!r} is not a top-1 accuracy in % "
                                      f"({ACCURACY_MIN:g}..{ACCURACY_MAX:g})")
                if key in self.rows and self.rows[key] != acc:
                    raise SourceError(f"accuracy table {self.path} line {line}: "
                                      f"{key[0]} at {key[1]} recorded twice, differently")
                self.rows[key] = acc
        except csv.Error as exc:
            raise SourceError(f"accuracy table {self.path}: not a CSV ({exc})") from None

    def evaluate(self, points: Sequence[Point]) -> list[float]:
        out = []
        for spec, res in points:
            acc = self.rows.get((spec.fingerprint, int(res)))
            if acc is None:
                raise SourceError(f"accuracy table {self.path} has no row for network {spec.name} "
                                  f"(fingerprint {spec.fingerprint}, widths "
                                  f"{list(spec.widths)}, depths {list(spec.depths)}) at "
                                  f"resolution {res}")
            out.append(acc)
        return out

    def describe(self) -> str:
        return f"table:{self.path}"


def parse_evaluator(text: str) -> Evaluator:
    """`table:PATH` or `py:MODULE:FUNCTION`."""
    kind, sep, rest = text.strip().partition(":")
    if sep and rest and kind == "py":
        return PyEvaluator(rest)
    if sep and rest and kind == "table":
        return TableEvaluator(rest)
    raise SourceError(f"unknown accuracy evaluator {text!r}; use table:PATH or py:MODULE:FUNCTION")


__all__ = ["Evaluator", "PyEvaluator", "TableEvaluator", "parse_evaluator"]
