"""Evaluators whose numbers come from the user: a recorded table (`table:`) or a function (`py:`).

- `table:PATH`: a CSV with `fingerprint`, `resolution` and either `accuracy` (top-1 %, the
  original format) or `metric` + `value` (what `latency-lab accuracy export` writes: one
  metric, e.g. `zen_tuned_score`, and the evaluator that made it). A network missing from it
  is an error naming it. Values are read, not computed, so they are not copied into the
  accuracy cache (`cacheable = False`).
- `py:MODULE:FUNCTION`: `FUNCTION(network_dict) -> float`, the dict being the network's JSON
  with `resolution` set; MODULE imported with the current directory on the path. Its values
  are taken as top-1 accuracy in %. The cache key holds a hash of the module's source file, so
  editing the function invalidates its cached values.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import math
from pathlib import Path

from latency_lab.search.evaluators import EvalRequest, EvalResult, Evaluator, EvaluatorError
from latency_lab.search.sources import load_py_callable, network_dict

METRIC_LABELS = {"accuracy": "top-1 accuracy (%)", "zen_score": "Zen-Score",
                 "zen_tuned_score": "tuned Zen-Score"}


class PyEvaluator(Evaluator):
    """`py:MODULE:FUNCTION`, called once per network with its JSON dict."""

    name = "py"
    ARG = "MODULE:FUNCTION"
    metric_label = METRIC_LABELS["accuracy"]

    def __init__(self, arg=None, options=None):
        super().__init__(arg, options)
        self.func = load_py_callable(arg)

    def evaluate(self, request: EvalRequest) -> EvalResult:
        try:
            value = self.func(network_dict(request.spec, request.resolution))
        except Exception as exc:  # the user's evaluator: one line, chained for debugging
            raise EvaluatorError(f"evaluator py:{self.arg} raised {type(exc).__name__}: {exc} "
                                 f"for {request.describe()}") from exc
        return EvalResult(self.check(request, value))

    def key_parts(self) -> list[str]:
        try:
            source = Path(inspect.getfile(inspect.getmodule(self.func))).read_bytes()
        except (TypeError, OSError):
            return ["src=unknown"]
        return [f"src={hashlib.sha256(source).hexdigest()[:16]}"]


class TableEvaluator(Evaluator):
    """`table:PATH`: recorded values keyed by (fingerprint, resolution)."""

    name = "table"
    ARG = "PATH"
    cacheable = False
    metric_label = METRIC_LABELS["accuracy"]

    def __init__(self, arg=None, options=None):
        super().__init__(str(arg), options)
        self.path = Path(arg)
        self.recorded_by = ""
        try:
            with self.path.open(newline="") as f:
                self._read(csv.DictReader(f))
        except OSError as exc:
            raise EvaluatorError(f"cannot read accuracy table {self.path}: {exc.strerror}") from None

    def _read(self, reader: csv.DictReader) -> None:
        cols = reader.fieldnames or []
        value_col = "accuracy" if "accuracy" in cols else "value"
        missing = [c for c in ("fingerprint", "resolution", value_col) if c not in cols]
        if missing:
            raise EvaluatorError(f"accuracy table {self.path} lacks column(s) {', '.join(missing)}"
                                 f" (needs fingerprint, resolution and accuracy, or metric and "
                                 f"value as `latency-lab accuracy export` writes)")
        self.rows: dict[tuple[str, int], float] = {}
        metrics, makers = set(), set()
        for line, row in enumerate(reader, start=2):
            where = f"accuracy table {self.path} line {line}"
            try:
                key = (row["fingerprint"].strip(), int(row["resolution"]))
                value = float(row[value_col])
            except (TypeError, ValueError, AttributeError):
                raise EvaluatorError(f"{where}: unreadable row {dict(row)}") from None
            if not math.isfinite(value):
                raise EvaluatorError(f"{where}: value {row[value_col]!r} is not a number")
            if key in self.rows and self.rows[key] != value:
                raise EvaluatorError(f"{where}: {key[0]} at {key[1]} recorded twice, differently")
            self.rows[key] = value
            metrics.add((row.get("metric") or "accuracy").strip())
            makers.add((row.get("evaluator") or "").strip())
        if len(metrics) > 1 or len(makers) > 1:
            raise EvaluatorError(f"accuracy table {self.path} mixes metrics or evaluators "
                                 f"({', '.join(sorted((metrics | makers) - {''}))}); export one "
                                 f"evaluator's values (accuracy export --evaluator)")
        self.metric = metrics.pop() if metrics else "accuracy"
        self.metric_label = METRIC_LABELS.get(self.metric, self.metric)
        self.unit = "%" if self.metric == "accuracy" else ""
        self.recorded_by = makers.pop() if makers else ""

    def evaluate(self, request: EvalRequest) -> EvalResult:
        value = self.rows.get((request.spec.fingerprint, int(request.resolution)))
        if value is None:
            s = request.spec
            raise EvaluatorError(f"accuracy table {self.path} has no row for network {s.name} "
                                 f"(fingerprint {s.fingerprint}, widths {list(s.widths)}, depths "
                                 f"{list(s.depths)}) at resolution {request.resolution}")
        return EvalResult(value)

    def key_parts(self) -> list[str]:
        return [f"recorded by {self.recorded_by}"] if self.recorded_by else []


__all__ = ["PyEvaluator", "TableEvaluator", "METRIC_LABELS"]
