"""Evaluators whose numbers come from the user: a recorded table (`table:`) or a function (`py:`).

- `table:PATH`: a CSV with `fingerprint`, `resolution` and either `accuracy` (top-1 %, the
  original format) or `metric` + `value` (what `latency-lab accuracy export` writes: one
  metric, e.g. `zen_tuned_score`, and the evaluator that made it). A network missing from it
  is an error naming it. Values are read, not computed, so they are not copied into the
  accuracy cache (`cacheable = False`).
- `py:MODULE:FUNCTION[,timeout=SECONDS]`: `FUNCTION(network_dict) -> float`, the dict being
  the network's JSON with `resolution` set: the user's own code, loaded alone and called as
  `search/pyworker.py` says (in a worker process, stopped with `timeout` when a call hangs). Its
  values are taken as top-1 accuracy in %, so a value outside 0..100 (or a bool, or a string)
  is an error. The cache key holds a hash of the module's source file, so editing the
  function invalidates its cached values; the timeout does not change a value and is not in it.

Accuracies in % lie in 0..100 (`ACCURACY_MIN`, `ACCURACY_MAX`): anything else is a unit
mistake or another kind of score, refused with the row or network named.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path

from latency_lab.fileio import read_text
from latency_lab.search.evaluators import (EvalRequest, EvalResult, Evaluator, EvaluatorError,
                                           Option)
from latency_lab.search.sources import check_value, load_py_callable, network_dict

ACCURACY_MIN, ACCURACY_MAX = 0.0, 100.0

METRIC_LABELS = {"accuracy": "top-1 accuracy (%)", "zen_score": "Zen-Score",
                 "zen_tuned_score": "tuned Zen-Score"}


class PyEvaluator(Evaluator):
    """`py:MODULE:FUNCTION`, called once per network with its JSON dict."""

    name = "py"
    summary = "your Python function of the network's JSON dict, called once per network"
    ARG = "MODULE:FUNCTION"
    metric_label = METRIC_LABELS["accuracy"]
    OPTIONS = {"timeout": Option(float, 0.0, "seconds after which a call is stopped (0: never)",
                                 minimum=0.0, keyed=False)}

    def __init__(self, arg=None, options=None):
        super().__init__(arg, options)
        timeout = self.options["timeout"]
        self.func = load_py_callable(f"{arg},timeout={timeout!r}" if timeout else arg,
                                     f"evaluator py:{arg}")
        self.synthetic = self.func.synthetic

    def evaluate(self, request: EvalRequest) -> EvalResult:
        value = self.func(network_dict(request.spec, request.resolution), request.describe())
        return EvalResult(self.check(request, value))

    def check(self, request: EvalRequest, value) -> float:
        """A top-1 accuracy in %: a finite number in 0..100, not a bool or a string."""
        return check_value(value, f"evaluator py:{self.arg}", request.spec, request.resolution,
                           positive=False, bounds=(ACCURACY_MIN, ACCURACY_MAX))

    def describe(self) -> str:
        timeout = self.options["timeout"]
        return f"py:{self.arg}" + (f",timeout={timeout!r}" if timeout else "")

    def close(self) -> None:
        self.func.close()

    def key_parts(self) -> list[str]:
        try:
            source = Path(self.func.source_file()).read_bytes()
        except (TypeError, OSError):
            return ["src=unknown"]
        return [f"src={hashlib.sha256(source).hexdigest()[:16]}"]


class TableEvaluator(Evaluator):
    """`table:PATH`: recorded values keyed by (fingerprint, resolution)."""

    name = "table"
    instant = True
    summary = "recorded values keyed by (fingerprint, resolution), e.g. from `accuracy export`"
    ARG = "PATH"
    cacheable = False
    metric_label = METRIC_LABELS["accuracy"]

    def __init__(self, arg=None, options=None):
        super().__init__(str(arg), options)
        self.path = Path(arg)
        self.recorded_by = ""
        # read as text first: a UTF-8 byte-order mark (Excel's CSV) is dropped, bytes that are
        # not UTF-8 are one line naming the file
        text = read_text(self.path, "accuracy table", EvaluatorError)
        try:
            self._read(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise EvaluatorError(f"accuracy table {self.path}: not a CSV ({exc})") from None

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
            metric = (row.get("metric") or "accuracy").strip()
            if metric == "accuracy" and not ACCURACY_MIN <= value <= ACCURACY_MAX:
                raise EvaluatorError(f"{where}: accuracy {row[value_col]!r} is not a top-1 "
                                     f"accuracy in % ({ACCURACY_MIN:g}..{ACCURACY_MAX:g})")
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


__all__ = ["PyEvaluator", "TableEvaluator", "METRIC_LABELS", "ACCURACY_MIN", "ACCURACY_MAX"]
