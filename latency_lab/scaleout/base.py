"""What every executor shares: the resources a task asks for, a parsed `--executor`, the
`Executor` interface and its error. Plain data and one abstract class; the executors
themselves (`executors.py`, `ray_executor.py`) build on this and nothing here imports them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from latency_lab.errors import UserError


DEFAULT_RETRIES = 3     # Ray's own default for tasks whose worker dies


class ExecutorError(UserError):
    """A bad --executor, an unreachable cluster, or work that cannot be placed or finished."""


@dataclass(frozen=True)
class Resources:
    """What one task needs: CPUs, GPUs and named resources (e.g. {"pixel2": 1})."""

    cpus: float = 1.0
    gpus: float = 0.0
    custom: tuple[tuple[str, float], ...] = ()

    def ray_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts

    def as_dict(self) -> dict[str, float]:
        """In Ray's names: {"CPU": 1, "GPU": 1, "pixel2": 1}, zero amounts left out."""
        d = {"CPU": self.cpus, "GPU": self.gpus, **dict(self.custom)}
        return {k: float(v) for k, v in d.items() if v}

    def describe(self) -> str:
        return ", ".join(f"{k} {v:g}" for k, v in self.as_dict().items()) or "nothing"


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed --executor: kind `local`, `processes` or `ray`."""

    text: str
    kind: str = "local"
    workers: int = 1
    address: str | None = None      # ray: None (join or start local), "auto", "ray://H:P"
    name: str = ""                  # the registry NAME of `--executor NAME[:ARG]` (default: kind)

    @property
    def executor(self) -> str:
        """The registry name of the executor class that opens this spec."""
        return self.name or ("local" if self.kind == "processes" else self.kind)

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"


RAY_HINT = "pip install 'latency-lab[ray]' (in a checkout: pip install -e '.[ray]')"


class Executor:
    """Runs `fn(item)` for each item of a batch; yields (index, result) as each finishes.

    A plugin executor is one subclass, found by its NAME through the entry-point group
    `latency_lab.executors` (NAME = "module:Class"): `parse` reads `--executor NAME[:ARG]`
    before anything runs, `create` opens it; `SYNTAX` is its help, (form, meaning) pairs."""

    name = ""
    SYNTAX: tuple[tuple[str, str], ...] = ()
    spec: ExecutorSpec
    workers: int = 1        # how many tasks may run at once (for messages and benchmarks)

    @classmethod
    def parse(cls, text: str, arg: str | None) -> ExecutorSpec:
        """`--executor NAME[:ARG]` -> its spec, or an ExecutorError saying what is wrong."""
        if arg is not None:
            raise ExecutorError(f"--executor {text!r}: {cls.name} takes no argument")
        return ExecutorSpec(text, cls.name)

    @classmethod
    def create(cls, spec: ExecutorSpec, max_retries: int = DEFAULT_RETRIES) -> "Executor":
        return cls(spec, max_retries)

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any],
                      resources: Resources = Resources()) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.spec.text

    def close(self) -> None:
        """Stop what this executor started (worker processes, a local Ray instance)."""

    def abort(self) -> None:
        """Stop at once what this executor started, abandoning running tasks (after Ctrl-C or
        SIGTERM: waiting for them to finish would outlive the signal). Default: close()."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.abort()
        else:
            self.close()


def _call_in(cwd: str, fn: Callable[[Any], Any], item: Any) -> Any:
    """Run `fn(item)` from the caller's directory: a py: module or a relative path in an
    evaluator's text means the same file as in the process that asked."""
    import sys

    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return fn(item)


def _short(item: Any) -> str:
    describe = getattr(item, "describe", None)
    return describe() if callable(describe) else repr(item)[:80]
