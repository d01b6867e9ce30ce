"""Accuracy evaluators: what a search ranks candidates by, behind one interface and one syntax.

An evaluator is named on the command line as `NAME[:ARG][,KEY=VALUE...]` (`--accuracy`):

    table:PATH                          recorded values (an accuracy table, `accuracy export`)
    py:MODULE:FUNCTION                  FUNCTION(network_dict) -> value, MODULE from the cwd
    zen[,batch=16,repeats=1,seed=0,gamma=0.01,se=drop,device=cpu,threads=0]   Zen-Score
    zen-tuned[,...same options]         Zen-Score divided by the number of conv blocks
    train:DATA_DIR[,epochs=10,batch=32,lr=0,...,device=cpu]   top-1 % after training
    net2net:DATA_DIR[,epochs=2,base_epochs=10,...]  top-1 % after fine-tuning from the parent

NAME is a registered evaluator; ARG (optional, at most one, first) is its positional argument
(a path, a MODULE:FUNCTION; it may not contain a comma); every other comma-separated item is
an option KEY=VALUE, converted to the type the evaluator declares (`Option`). Unknown names or
options, a missing or extra ARG and a value of the wrong type are one-line `SourceError`s.

**The unit of work** is one `EvalRequest`: a candidate network (`NetworkSpec`), its
resolution, the evaluator's canonical text, and, for a candidate the search made by one
scaling step, the request of its parent and the `Step` (dimension and stages). It is a frozen,
picklable dataclass and `run_request(request) -> EvalResult` needs nothing else: an executor
may ship it to another process or machine, rebuild the evaluator from its text there, and
send the `EvalResult` (value, CI, repeats, seconds, details) back. Evaluators that do not
need the parent (table:, py:, zen) ignore it; one that does (a warm start from the parent's
weights) says so with `uses_parent = True`, and the accuracy cache then keys its results by
the lineage too (`EvalRequest.lineage`). The search hands the requests an iteration still
needs to a *runner* together (`evaluate_locally` by default: one after the other, in this
process); a runner yields (index, result) in any order as they finish, each result is
recorded at once, and the search decides when all are in.

Values are what the evaluator measures, named by its `metric` (`accuracy` in %, `zen_score`,
`zen_tuned_score`): a proxy score is never called an accuracy. Every evaluation is stored as it
finishes in the SQLite store (`latency_lab.search.accuracy_cache`), keyed by (fingerprint,
resolution, `Evaluator.key()`), the key covering everything that changes the number: name,
argument, every option (defaults included), data-set fingerprint, code version.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from latency_lab.scaleout.base import Executor, Resources
from latency_lab.scaleout.executors import InlineExecutor
from latency_lab.network.spec import NetworkSpec
from latency_lab.search.sources import SourceError

# False while an evaluator is built only to describe, key and check evaluations that run
# elsewhere (`parse_evaluator(..., elsewhere=True)`): checks of this machine's hardware (is
# there CUDA?) are then left to the worker that evaluates.
_HERE = contextvars.ContextVar("latency_lab_evaluates_here", default=True)


def evaluates_here() -> bool:
    """Whether the evaluator being built will evaluate in this process (see parse_evaluator)."""
    return _HERE.get()

Point = tuple[NetworkSpec, int]


class EvaluatorError(SourceError):
    """An evaluator that cannot be set up, or an evaluation without a usable number."""


# -- the unit of work ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """The scaling step that made a candidate from its parent: `width` or `depth` of stages."""

    dimension: str
    stages: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.dimension[0]}{'+'.join(map(str, self.stages))}"


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation: everything an evaluator needs, picklable, nothing held open."""

    spec: NetworkSpec
    resolution: int
    evaluator: str                          # canonical text, see Evaluator.describe()
    parent: "EvalRequest | None" = None     # the candidate's parent at the same resolution
    step: Step | None = None                # how the parent became this candidate
    target: str = ""                        # the evaluator's "module:Class", for a worker that
    #                                         does not know its name (register_evaluator)

    def lineage(self) -> tuple[tuple[str, int], ...]:
        """(fingerprint, resolution) from the root of the path to this network."""
        up = self.parent.lineage() if self.parent is not None else ()
        return up + ((self.spec.fingerprint, int(self.resolution)),)

    def describe(self) -> str:
        return f"{self.spec.name} ({self.spec.fingerprint}) at {self.resolution}"


@dataclass(frozen=True)
class EvalResult:
    """A value with its spread: `ci` is the 95% CI of the mean over `n` repeats (or None)."""

    value: float
    n: int = 1
    ci: tuple[float, float] | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


# -- options ------------------------------------------------------------------------------------
# An integer option is at most 2**31-1 unless it says otherwise: train:'s seed=10**20 was a
# ValueError traceback in torch's generator (int64), batch=10**20 one in itertools.islice, and
# seed + seeds - 1 must stay an int64 too (issue 25: numbers at the edges).
INT_MAX = 2**31 - 1

@dataclass(frozen=True)
class Option:
    """A declared evaluator option: type (int, float, bool, str), default, allowed values."""

    type: type
    default: Any
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None  # an int: INT_MAX unless declared
    keyed: bool = True        # False: does not change the number (left out of the cache key)
    omit_default: bool = False  # True: left out of the key at its default (an option added
    #                             later whose default computes what was computed before it)

    def convert(self, evaluator: str, key: str, text: str) -> Any:
        bad = f"evaluator {evaluator}: option {key}={text!r}"
        if self.type is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise EvaluatorError(f"{bad} is not a boolean (true/false)")
        try:
            value = self.type(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(self.type, self.type.__name__)
            raise EvaluatorError(f"{bad} is not {kind}") from None
        if self.type is float and not math.isfinite(value):
            raise EvaluatorError(f"{bad} is not a finite number")
        if self.choices and value not in self.choices:
            raise EvaluatorError(f"{bad}: choose one of {', '.join(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise EvaluatorError(f"{bad}: must be at least {self.minimum:g}")
        top = self.maximum if self.maximum is not None else INT_MAX if self.type is int else None
        if top is not None and value > top:
            raise EvaluatorError(f"{bad}: must be at most {top}")
        return value


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def split_evaluator_text(text: str) -> tuple[str, str | None, dict[str, str]]:
    """`NAME[:ARG][,K=V...]` -> (name, arg or None, {key: raw value}); syntax errors raised."""
    text = text.strip()
    if not text:
        raise EvaluatorError("empty accuracy evaluator; " + _known())
    head, *items = text.split(",")
    name, sep, arg = head.partition(":")
    name = name.strip()
    if "=" in name:
        raise EvaluatorError(f"malformed accuracy evaluator {text!r}: it starts with its NAME, "
                             f"e.g. zen,batch=16")
    options: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise EvaluatorError(f"malformed option {item!r} in {text!r}: use KEY=VALUE "
                                 f"(an argument goes first, NAME:ARG, and has no comma)")
        if key in options:
            raise EvaluatorError(f"option {key} given twice in {text!r}")
        options[key] = value.strip()
    return name, (arg.strip() if sep else None), options


# -- the interface ------------------------------------------------------------------------------
class Evaluator:
    """Interface: one `EvalRequest` -> one `EvalResult`.

    Subclasses set `name`, `summary`, `metric` (column name of their values), `metric_label` (axis
    label), `unit` ("%" or ""), `OPTIONS`, `ARG` (None: no argument; else what it is, e.g.
    "PATH"), `version` (bump when the computation changes: it is in the cache key), and
    implement `evaluate`. `__init__(arg, options)` receives converted options.
    """

    name = ""
    summary = ""            # one line: what the value is (`latency-lab evaluators` shows it)
    metric = "accuracy"
    metric_label = "accuracy (%)"
    unit = "%"
    ARG: str | None = None
    OPTIONS: dict[str, Option] = {}
    version = 1
    synthetic = ""          # else what the made-up number is: every output says SYNTHETIC
    uses_parent = False     # True: the result depends on the parent's (trained) state
    cacheable = True        # False: read from a file, or a formula: the store is slower
    arg_in_key = True       # False where ARG is a path whose content is keyed instead (data)
    instant = False         # True: a formula or a file lookup, microseconds (rbis.Cache.save)
    extras: tuple[str, ...] = ()   # optional extras it needs (latency_lab.extras), e.g. torch

    def __init__(self, arg: str | None = None, options: dict[str, Any] | None = None):
        self.arg = arg
        self.options = {k: o.default for k, o in self.OPTIONS.items()}
        self.options.update(options or {})
        self.here = evaluates_here()

    def with_options(self, **changes: Any) -> "Evaluator":
        """The same evaluator with some options changed (converted values), built for the
        same place (here or elsewhere); e.g. `with_options(seeds=3)` for a race."""
        token = _HERE.set(self.here)
        try:
            return type(self)(self.arg, {**self.options, **changes})
        finally:
            _HERE.reset(token)

    @property
    def seeds(self) -> int | None:
        """How many seeds the value is the mean of, for an evaluator with a `seeds` option
        (the training evaluators); None for one without (a search cannot race it)."""
        return int(self.options["seeds"]) if "seeds" in self.OPTIONS else None

    def evaluate(self, request: EvalRequest) -> EvalResult:
        raise NotImplementedError

    def describe(self) -> str:
        """Canonical text, every option spelled out; `parse_evaluator` reads it back."""
        parts = [self.name + (f":{self.arg}" if self.arg is not None else "")]
        parts += [f"{k}={_fmt(v)}" for k, v in sorted(self.options.items())]
        return ",".join(parts)

    def key_parts(self) -> list[str]:
        """What besides name and options changes the number (data-set and code fingerprints)."""
        return []

    def key(self) -> str:
        """The accuracy cache's evaluator key: name, argument, keyed options, version, extras."""
        opts = ",".join(f"{k}={_fmt(v)}" for k, v in sorted(self.options.items())
                        if self.OPTIONS[k].keyed
                        and not (self.OPTIONS[k].omit_default and v == self.OPTIONS[k].default))
        arg = f":{self.arg}" if self.arg is not None and self.arg_in_key else ""
        return ";".join([f"{self.name}{arg}" + (f",{opts}" if opts else ""),
                         f"v{self.version}", *self.key_parts()])

    def request(self, spec: NetworkSpec, resolution: int, parent: EvalRequest | None = None,
                step: Step | None = None) -> EvalRequest:
        return EvalRequest(spec, int(resolution), self.describe(), parent, step,
                           class_path(type(self)))

    def resources(self) -> Resources:
        """What one evaluation needs where it runs (an executor schedules by it): a GPU when
        the `device` option is cuda, as many CPUs as the `threads` option (at least one)."""
        o = self.options
        gpus = 1.0 if str(o.get("device", "cpu")).startswith("cuda") else 0.0
        return Resources(cpus=float(max(1, int(o.get("threads") or 1))), gpus=gpus)

    def close(self) -> None:
        """Release what the evaluator holds (nothing by default)."""

    def check(self, request: EvalRequest, value: Any) -> float:
        """A finite float, else an EvaluatorError naming the evaluator and the network."""
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise EvaluatorError(f"evaluator {self.describe()} returned {value!r:.80} (not a "
                                 f"number) for {request.describe()}") from None
        except OverflowError:      # an int such as 10**400
            raise EvaluatorError(f"evaluator {self.describe()} returned an integer too large "
                                 f"for a float for {request.describe()}") from None
        if not math.isfinite(x):
            raise EvaluatorError(f"evaluator {self.describe()} returned {x!r} for "
                                 f"{request.describe()}: need a finite number")
        return x


# -- registry -----------------------------------------------------------------------------------
# The built-in evaluators, listed once: name -> "module:Class", imported when first named (zen
# imports torch; --help must not). Other packages add theirs through the entry-point group
# below (pyproject: [project.entry-points."latency_lab.evaluators"] NAME = "module:Class"),
# which every process finds, spawned and Ray workers included.
EVALUATORS: dict[str, str | type] = {
    "table": "latency_lab.search.recorded:TableEvaluator",
    "py": "latency_lab.search.recorded:PyEvaluator",
    "zen": "latency_lab.search.zen:ZenScore",
    "zen-tuned": "latency_lab.search.zen:TunedZenScore",
    "synthetic": "latency_lab.search.synthetic:SyntheticAccuracy",
    "train": "latency_lab.search.training_eval:TrainEvaluator",
    "net2net": "latency_lab.search.training_eval:Net2NetEvaluator",
}
ENTRY_POINT_GROUP = "latency_lab.evaluators"


def register_evaluator(name: str, target: str | type) -> None:
    """Add an evaluator under `name` in this process (a class, or "module:Class" imported when
    used). Workers of `--executor local:N` or Ray rebuild it from the class's module, which
    must be importable there; an installed plugin uses the entry-point group instead."""
    EVALUATORS[name] = target


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _target(name: str) -> str | type | None:
    return EVALUATORS.get(name) or _plugins().get(name)


def evaluator_names() -> list[str]:
    """Every evaluator that can be named: the built-ins, registered and installed ones."""
    return sorted(set(EVALUATORS) | set(_plugins()))


def _known() -> str:
    return ("known evaluators: " + ", ".join(evaluator_names())
            + " (`latency-lab evaluators` lists their options)")


def _load(name: str, target: str | type) -> type[Evaluator]:
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in cls.split("."):
                obj = getattr(obj, part)
        except ImportError as exc:
            missing = exc.name or module
            extra = "torch" if missing.split(".")[0] == "torch" else None
            hint = (f" (pip install 'latency-lab[{extra}]'; in a checkout: pip install -e "
                    f"'.[{extra}]')" if extra else "")
            raise EvaluatorError(f"evaluator {name} needs {missing}, which this installation "
                                 f"lacks{hint}") from None
        except AttributeError as exc:
            raise EvaluatorError(f"evaluator {name}: cannot load {target!r}: {exc}") from None
        target = obj
    if not (isinstance(target, type) and issubclass(target, Evaluator)):
        raise EvaluatorError(f"evaluator {name}: {target!r} is not an accuracy evaluator (a "
                             f"subclass of latency_lab.search.evaluators.Evaluator)")
    return target


def evaluator_class(name: str) -> type[Evaluator]:
    target = _target(name)
    if target is None:
        raise EvaluatorError(f"unknown accuracy evaluator {name!r}; {_known()}")
    return _load(name, target)


def describe_evaluators() -> list[dict[str, Any]]:
    """Every evaluator that can be named, from its class's declarations (name, argument,
    summary, metric, options with type, default, bounds and help); one that cannot be loaded
    here is listed with the reason."""
    rows = []
    for name in evaluator_names():
        try:
            cls = evaluator_class(name)
        except EvaluatorError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        usage = name + (f":{cls.ARG}" if cls.ARG else "") + (",KEY=VALUE..." if cls.OPTIONS else "")
        rows.append({
            "name": name, "usage": usage, "arg": cls.ARG, "summary": cls.summary,
            "metric": cls.metric, "unit": cls.unit, "class": class_path(cls),
            "options": {k: {"type": o.type.__name__, "default": _fmt(o.default),
                            "choices": list(o.choices), "minimum": o.minimum, "help": o.help,
                            "keyed": o.keyed}
                        for k, o in sorted(cls.OPTIONS.items())}})
    return rows


def class_path(cls: type) -> str:
    """"module:Class": how another process imports `cls`."""
    return f"{cls.__module__}:{cls.__qualname__}"


def parse_evaluator(text: str, elsewhere: bool = False) -> Evaluator:
    """`NAME[:ARG][,KEY=VALUE...]` -> a ready evaluator; every error a one-line SourceError.

    `elsewhere`: its evaluations will run in other processes or machines (an executor sends
    them `run_request`), so it is built to describe, key and check them; whether this machine
    has the hardware it asks for (CUDA) is checked where it runs, not here."""
    name, arg, raw = split_evaluator_text(text)
    cls = evaluator_class(name)
    if cls.ARG is None and arg is not None:
        raise EvaluatorError(f"evaluator {name} takes no argument (got {name}:{arg}); "
                             f"options go after a comma: {name},KEY=VALUE")
    if cls.ARG is not None and not arg:
        raise EvaluatorError(f"evaluator {name} needs its {cls.ARG}: {name}:{cls.ARG}")
    options = {}
    for key, value in raw.items():
        opt = cls.OPTIONS.get(key)
        if opt is None:
            known = ", ".join(sorted(cls.OPTIONS)) or "none"
            raise EvaluatorError(f"evaluator {name}: unknown option {key!r} (known: {known})")
        options[key] = opt.convert(name, key, value)
    if cls.extras and not elsewhere:   # workers elsewhere may have what this machine lacks
        from latency_lab.extras import require

        require(f"--accuracy {name}", *cls.extras)
    token = _HERE.set(not elsewhere)
    try:
        return cls(arg, options)
    finally:
        _HERE.reset(token)


@functools.lru_cache(maxsize=8)
def _evaluator_for(text: str) -> Evaluator:
    return parse_evaluator(text)


def run_request(request: EvalRequest) -> EvalResult:
    """Run one unit of work anywhere: rebuild the evaluator from its text and evaluate.

    A worker process keeps the last few evaluators it built (a py: module stays imported).
    """
    name = split_evaluator_text(request.evaluator)[0]
    if request.target and _target(name) is None:    # registered in the process that asked
        register_evaluator(name, request.target)
    evaluator = _evaluator_for(request.evaluator)
    result = evaluator.evaluate(request)
    evaluator.check(request, result.value)
    return result


def evaluate_locally(evaluator: Evaluator,
                     requests: Sequence[EvalRequest]) -> Iterator[tuple[int, EvalResult]]:
    """The default runner: one request after the other, in this process. A runner takes the
    evaluator and the requests an iteration still needs and yields (index, result) as each
    finishes, in any order (an executor running `run_request` elsewhere is another runner)."""
    for i, request in enumerate(requests):
        yield i, evaluator.evaluate(request)


Runner = Callable[[Evaluator, Sequence[EvalRequest]], Iterable[tuple[int, EvalResult]]]


def evaluation_runner(executor: Executor):
    """The search's runner (`rbis.Cache`): with `local`, the evaluator built here evaluates in
    this process (`evaluate_locally`); otherwise every `EvalRequest` goes to `run_request`
    wherever the executor runs it, asking for the evaluator's `resources()`."""
    if isinstance(executor, InlineExecutor):
        return evaluate_locally

    def run(evaluator, requests):
        return executor.map_unordered(run_request, list(requests), evaluator.resources())

    return run


__all__ = ["Evaluator", "EvaluatorError", "EvalRequest", "EvalResult", "Step", "Option",
           "EVALUATORS", "ENTRY_POINT_GROUP", "register_evaluator", "evaluator_names",
           "class_path", "describe_evaluators", "parse_evaluator", "run_request",
           "split_evaluator_text", "evaluator_class", "evaluate_locally", "evaluation_runner",
           "Runner", "Point"]
