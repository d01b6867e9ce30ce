"""Accuracy evaluators: score a batch of candidate networks (top-1 accuracy in %).

The thesis trained 10 candidates in parallel, so the interface scores a *batch*:
`evaluate([(spec, resolution), ...]) -> [accuracy, ...]`, and says how many it wants at a
time (`batch_size`; None = any number). The search saves its state after every batch, so a
per-network evaluator (batch_size 1) never loses a finished evaluation to an interruption.

- `table:PATH`: a CSV of recorded accuracies with columns `fingerprint`, `resolution`,
  `accuracy` (optional `network`, ignored); a network missing from it is an error naming it.
- `py:MODULE:FUNCTION`: `FUNCTION(network_dict) -> float %`, called per network.

An evaluator that raises or returns NaN/inf stops the search with a one-line error
(`SourceError`); the search keeps the trace up to that point.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from latency_lab.spec import NetworkSpec
from latency_lab.search.sources import SourceError, check_value, load_py_callable, network_dict

Point = tuple[NetworkSpec, int]


class Evaluator:
    """Interface: accuracies (%) of a batch of (network, resolution) points, in order.

    `synthetic` is '' for a real evaluator, else what the synthetic one is: every output
    of a search then says so, so that a made-up number is never taken for an accuracy."""

    batch_size: int | None = None
    synthetic: str = ""

    def evaluate(self, points: Sequence[Point]) -> list[float]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class PyEvaluator(Evaluator):
    """`py:MODULE:FUNCTION`, called once per network with its JSON dict."""

    batch_size = 1

    def __init__(self, target: str, name: str | None = None):
        self.target, self.name = target, name
        self.func = load_py_callable(target)
        mark = getattr(self.func, "synthetic", "")
        self.synthetic = (mark if isinstance(mark, str) else "synthetic") if mark else ""

    def evaluate(self, points: Sequence[Point]) -> list[float]:
        out = []
        for spec, res in points:
            try:
                value = self.func(network_dict(spec, res))
            except Exception as exc:  # the user's evaluator: one line, chained for debugging
                raise SourceError(f"evaluator py:{self.target} raised {type(exc).__name__}: "
                                  f"{exc} for {spec.name} ({spec.fingerprint}) at {res}") from exc
            out.append(check_value(value, f"evaluator py:{self.target}", spec, res,
                                   positive=False))
        return out

    def describe(self) -> str:
        what = self.name or f"py:{self.target}"
        if self.synthetic:
            where = "latency_lab.search.synthetic" if self.name == "synthetic" else what
            return f"SYNTHETIC ({where}: {self.synthetic})"
        return what


class TableEvaluator(Evaluator):
    """`table:PATH`: recorded accuracies keyed by (fingerprint, resolution)."""

    REQUIRED = ("fingerprint", "resolution", "accuracy")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                missing = [c for c in self.REQUIRED if c not in (reader.fieldnames or [])]
                if missing:
                    raise SourceError(f"accuracy table {self.path} lacks column(s) "
                                      f"{', '.join(missing)} (needs {', '.join(self.REQUIRED)})")
                self.rows: dict[tuple[str, int], float] = {}
                for line, row in enumerate(reader, start=2):
                    try:
                        key = (row["fingerprint"].strip(), int(row["resolution"]))
                        acc = float(row["accuracy"])
                    except (TypeError, ValueError, AttributeError):
                        raise SourceError(f"accuracy table {self.path} line {line}: "
                                          f"unreadable row {dict(row)}") from None
                    if not math.isfinite(acc):
                        raise SourceError(f"accuracy table {self.path} line {line}: "
                                          f"accuracy {row['accuracy']!r} is not a number")
                    if key in self.rows and self.rows[key] != acc:
                        raise SourceError(f"accuracy table {self.path} line {line}: "
                                          f"{key[0]} at {key[1]} recorded twice, differently")
                    self.rows[key] = acc
        except OSError as exc:
            raise SourceError(f"cannot read accuracy table {self.path}: {exc.strerror}") from None

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
    """`table:PATH`, `py:MODULE:FUNCTION` or `synthetic` (latency_lab.search.synthetic)."""
    if text.strip() == "synthetic":
        return PyEvaluator("latency_lab.search.synthetic:accuracy", name="synthetic")
    kind, sep, rest = text.strip().partition(":")
    if sep and rest and kind == "py":
        return PyEvaluator(rest)
    if sep and rest and kind == "table":
        return TableEvaluator(rest)
    raise SourceError(f"unknown accuracy evaluator {text!r}; use table:PATH, py:MODULE:FUNCTION "
                      "or synthetic")


__all__ = ["Evaluator", "PyEvaluator", "TableEvaluator", "parse_evaluator"]
