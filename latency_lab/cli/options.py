"""What the command groups share: every option more than one command takes (declared once
here, with its default read from the module that owns it), the console, progress of a
measuring run, parsers of option values. Nothing here imports a command module.

An option is an `Annotated` type: a command writes `store_path: StorePath = None`. A name
means one thing in every command (`tests/test_cli.py` holds each shared name to one help text).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from latency_lab.errors import UserError
from latency_lab.measure.settings import Protocol, protocol_from
from latency_lab.scaleout.executors import EXECUTOR_HELP
from latency_lab.search.evaluators import EVALUATORS

# -- what to measure, where -----------------------------------------------------------------
DEFAULT_NETWORK = "efficientnet-b0"
NetworkName = Annotated[str, typer.Option("--network", help="Preset name or network JSON file.")]
DeviceName = Annotated[str, typer.Option("--device", help="Device driver name (see "
                                                          "`latency-lab devices`).")]
Threads = Annotated[Optional[int], typer.Option(help="Inference threads (device default: 1).")]
Affinity = Annotated[Optional[str], typer.Option(help="Pin to CPUs, e.g. 0 or 0-3 (cpu "
                                                      "device).")]
Serial = Annotated[Optional[str], typer.Option(help="ADB serial of the phone (android, "
                                                    "pixel2).")]
DeviceOptions = Annotated[list[str], typer.Option(
    "--device-option", "-O", help="Driver option KEY=VALUE of a device, repeatable (e.g. "
    "adb_port=5037, precision=fp16; builder=keras converts models with the TFLite converter "
    "instead of emitting them).")]
Resolutions = Annotated[Optional[str], typer.Option(
    help="Input resolutions: start:stop:step (inclusive) or a list, e.g. 240:288:16 or "
         "240,256,272,288.")]
StorePath = Annotated[Optional[Path], typer.Option(
    "--store", help="SQLite store of every sample and evaluation (default: the cache's "
                    "measurements.sqlite).")]
DeviceFilter = Annotated[Optional[str], typer.Option("--device", help="Only this device name "
                                                                    "or context key.")]
NetworkFilter = Annotated[Optional[str], typer.Option(
    "--network", help="Only this network: a name, fingerprint, preset, network JSON or result "
                      "file.")]
Rows = Annotated[bool, typer.Option("--rows/--no-rows", help="List every row (--no-rows: "
                                                               "counts only).")]
AllModels = Annotated[bool, typer.Option("--all", help="Every model of the cache (show: list "
                                                       "each; prune: remove each).")]
Seed = Annotated[int, typer.Option(min=0, max=2**63 - 1,
                                   help="Seed of what this command draws at random: the same "
                                        "seed gives the same result.")]
ValPerClass = Annotated[Optional[int], typer.Option(
    "--val-per-class", help="Validation images per class, in val/ (fashion-mnist: a seeded "
                            "choice from the test file; all 1,000 when left out).")]
Resolution = Annotated[Optional[int], typer.Option(
    help="Input resolution R (R x R pixels; default: the network's own, except network "
         "export, whose default leaves H and W dynamic).")]
Jumps = Annotated[bool, typer.Option(help="Detect latency jumps after each sweep (`latency-lab "
                                          "jumps`).")]
EvaluatorFilter = Annotated[Optional[str], typer.Option(
    "--evaluator", help="Only this evaluator: its text as given to --accuracy (e.g. zen-tuned, "
                        "zen,batch=8) or a stored evaluator key (or a unique prefix of one); "
                        "needed by export when the store holds several.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Remeasure = Annotated[bool, typer.Option(help="Measure again even where the store has "
                                              "results.")]
Executor = Annotated[str, typer.Option(help=EXECUTOR_HELP)]
BudgetMs = Annotated[Optional[float], typer.Option("--budget-ms", help="Latency budget T in "
                                                                       "ms.")]

# -- a search: latency sources, evaluators, candidates -------------------------------------------
PY_HELP = ("py:MODULE:FUNCTION runs your own Python code (MODULE: a .py file, a module of the "
           "current directory, or an installed one; add ,timeout=SECONDS to stop a call that "
           "hangs).")
Latency = Annotated[list[str], typer.Option(
    help="Latency source: a device name (measured live, cached in the store), table:PATH, "
         "lut:PATH or py:MODULE:FUNCTION. Repeat it for a fallback chain: what the first lacks "
         "is asked of the next (--latency table:T --latency lut:L --latency cpu). " + PY_HELP)]
Accuracy = Annotated[str, typer.Option(
    help="Accuracy evaluator NAME[:ARG][,KEY=VALUE...]; built in: " + ", ".join(EVALUATORS)
         + ", and any installed through the entry-point group latency_lab.evaluators. "
         "`latency-lab evaluators` lists each with its argument and options. " + PY_HELP)]
Reevaluate = Annotated[bool, typer.Option("--reevaluate", help="Evaluate every candidate again "
                                          "even where the accuracy cache has its value.")]
ResolutionsFrom = Annotated[Optional[Path], typer.Option(
    "--resolutions-from", help="Candidate resolutions from a CSV: a `latency-lab jumps` "
    "candidates.csv is re-selected for this budget and network (--max-candidates); any other "
    "CSV's `resolution` column is taken as it is.")]
LutFile = Annotated[Path, typer.Option("--lut", help="LUT file written by `lut record`.")]
Candidates = Annotated[int, typer.Option(help="K: candidates evaluated per iteration (lowest "
                                              "latency).")]
Stages = Annotated[Optional[str], typer.Option(help="0-based body stages RBIS scales, e.g. "
                                                    "2,3,4,5,6 (default: the last five).")]
MaxSeeds = Annotated[int, typer.Option(
    "--max-seeds", min=1, help="Racing cap: for an evaluator with a seeds option (train:, "
    "net2net:), the baseline is evaluated with this many seeds and an iteration's leader and "
    "the candidates whose intervals overlap it get one more seed at a time, up to this many "
    "(1: no racing).")]
MaxCandidates = Annotated[int, typer.Option(
    min=0, help="Keep the best N candidate resolutions by the size of the jump after them, "
                "among those with room for a scaling step under the budget (0: all).")]

# -- the measurement protocol (defaults: measure/settings.py) ----------------------------------
CiTarget = Annotated[float, typer.Option(help="Stop a point at this CI half-width, % of its "
                                              "median.")]
MinRounds = Annotated[int, typer.Option(help="Rounds before a point may stop.")]
MaxRounds = Annotated[int, typer.Option(help="Rounds after which a point stops anyway (alone "
                                             "below --min-rounds, it lowers that too).")]
RunsPerVisit = Annotated[int, typer.Option(help="Samples per point per round.")]
TimeCap = Annotated[float, typer.Option(help="Wall-time cap of the measuring, seconds (inf: "
                                             "none); a rerun goes on where it stopped.")]
LatencyScaleTable = Annotated[Optional[Path], typer.Option(
    "--latency-scale", help="A recorded latency table: a live device's latencies go on its "
    "scale (each batch's reference, the base network, takes the table's row as its value), so "
    "live runs at different loads compare with each other and with a budget read there.")]
BatchTimeCap = Annotated[float, typer.Option(help="A live device: wall-time cap of measuring "
                                                  "each batch of candidates, seconds.")]


def protocol(base: Protocol, ci_target_pct: float, min_rounds: int, max_rounds: int,
             runs_per_visit: int | None = None, time_cap_s: float | None = None) -> Protocol:
    """The protocol a command's options give, over the defaults they were declared with."""
    return protocol_from(base, ci_target_pct, min_rounds, max_rounds, runs_per_visit,
                         time_cap_s)


def make_console():
    """The console every command prints its progress and notes on: stderr, so that stdout
    carries only what a command is asked for (JSON, a listing)."""
    from rich.console import Console

    return Console(stderr=True)


def device_options(items: list[str], **flags) -> dict[str, object]:
    from latency_lab.measure.api import parse_device_options

    return parse_device_options(items, **flags)


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def status_line(st) -> str:
    """One line for a `protocol.RunStatus`: the round (counted on from earlier runs), points
    at the CI target and points stopped short of it (a time cap, max rounds: not "done" in the
    sense a user reads it), current CI, time left."""
    parts = [f"round {st.round_label}", f"{st.met}/{st.total} points at the CI target"]
    if st.done > st.met:
        parts.append(f"{st.done - st.met} stopped short of it")
    if st.ci_pct is not None:
        parts.append(f"CI +-{st.ci_pct:.2f}% median, {st.worst_ci_pct:.2f}% widest "
                     f"(target {st.target_pct:g}%)")
    parts.append(f"{_duration(st.elapsed_s)} elapsed")
    if st.eta_s is not None:
        parts.append(f"~{_duration(st.eta_s)} left" + (" (time cap)" if st.capped_eta else ""))
    return ", ".join(parts)


def resume_line(st) -> str:
    """What a run takes from the store, said once at its start ('' when nothing)."""
    if not (st.reused or st.resumed):
        return ""
    parts = []
    if st.resumed:
        parts.append(f"{st.resumed} point(s) measured further ({st.kept_samples} samples and up "
                     f"to {st.prior_rounds} rounds kept)")
    if st.reused:
        parts.append(f"{st.reused} finished point(s) reused as they were")
    return ("resuming from the store: " + "; ".join(parts)
            + " (--remeasure measures all anew)")


NOTE_EVERY_S = 10.0


class Progress:
    """Progress of a measuring run, called with a `protocol.RunStatus` after every round.

    On a terminal a rich bar over the estimated time (elapsed / elapsed + time left) with the
    status line and what happens now (a point's set-up) beside it; otherwise (output to a file
    or a pipe) the status line printed once per round, and set-up notes at most every
    NOTE_EVERY_S, so a log shows how the run went."""

    def __init__(self, console, label: str = ""):
        self.console, self.label = console, label
        self.bar = self.last = None
        self.note, self.noted = "", 0.0

    def __enter__(self):
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn

            self.bar = Progress(BarColumn(), TextColumn("{task.description}"),
                                console=self.console, transient=False)
            self.bar.start()
            self.task = self.bar.add_task("starting", total=None)
        return self

    def __call__(self, status) -> None:
        if self.last is None:    # the first status: what this run takes from the store
            said = resume_line(status)
            if said:
                self.console.print((f"{self.label}: " if self.label else "") + said,
                                   highlight=False, soft_wrap=True)
        self.last = status
        text = (f"{self.label}: " if self.label else "") + status_line(status)
        self.note = status.note   # what happens now (a set-up): shown only while it does
        if status.note:   # beside the bar; in a log, now and then
            if self.bar is None:
                if time.monotonic() - self.noted < NOTE_EVERY_S:
                    return
                self.noted = time.monotonic()
                text += f"; {status.note}"
        if self.bar is None:
            self.console.print(text, highlight=False, soft_wrap=True)
            return
        total = status.elapsed_s + status.eta_s if status.eta_s is not None else None
        done = status.done == status.total
        self.bar.update(self.task, description=f"{text}  {self.note}".rstrip(),
                        completed=total if done else status.elapsed_s, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def parse_int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"malformed {what} {text!r}: give comma-separated integers") from None
    if not values:
        raise UserError(f"no {what} in {text!r}")
    return values
