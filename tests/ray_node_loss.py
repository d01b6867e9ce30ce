"""Run as a script by test_search_executors: a search on a two-node local Ray cluster
(ray.cluster_utils.Cluster: real raylets, one per node) loses one node mid-search.

Run with RAY_TMPDIR set to a folder of its own: Cluster records its address in
RAY_TMPDIR/ray/ray_current_cluster, where `ray.init()` anywhere on the machine would find it.
Writes one JSON object to its fourth argument: whether the search decided exactly as
in-process, how many evaluations started twice (taken with the lost node and run again), the
cluster's nodes at the end.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def main(folder: str, module: str, budget: float, out: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from latency_lab.network import presets
    from latency_lab.scaleout.executors import open_executor, parse_executor
    from latency_lab.search.evaluators import evaluation_runner
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.search.rbis import run_rbis
    from latency_lab.search.sources import PyLatency

    sys.path.insert(0, folder)
    b0 = presets.get("efficientnet-b0")
    src = PyLatency(f"{module}:latency_ms")
    log = Path(folder) / "evals.log"
    local = run_rbis(b0, budget, [224], src, parse_evaluator(f"py:{module}:accuracy"),
                     [3, 4, 5, 6], 4)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False})
    try:
        doomed = cluster.add_node(num_cpus=1)
        survivor = cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        warm_a_worker_on(ray, [doomed.node_id, survivor.node_id])
        (Path(folder) / "doomed").write_text(
            str(doomed.all_processes["raylet"][0].process.pid))

        def remove_when_blocked():
            while not log.exists() or "doomed" not in log.read_text():
                time.sleep(0.05)
            cluster.remove_node(doomed, allow_graceful=False)

        threading.Thread(target=remove_when_blocked, daemon=True).start()
        ev = parse_evaluator(f"py:{module}:blocks_on_doomed_node", elsewhere=True)
        with open_executor(parse_executor("ray")) as ex:
            remote = run_rbis(b0, budget, [224], src, ev, [3, 4, 5, 6], 4,
                              run=evaluation_runner(ex))
        lines = [line.split() for line in log.read_text().splitlines()]
        lost = {key for what, key, _ in lines if what == "doomed"}
        deadline = time.monotonic() + 60     # the GCS marks a killed raylet dead a bit later
        while time.monotonic() < deadline and \
                any(n["Alive"] for n in ray.nodes() if n["NodeID"] == doomed.node_id):
            time.sleep(0.5)
        report = {"same": remote.trace == local.trace,
                  "evaluations": remote.cache.evaluations, "lost_with_node": len(lost),
                  "lost_then_done": all(["done", k] in [ln[:2] for ln in lines] for k in lost),
                  "alive_nodes": sum(n["Alive"] for n in ray.nodes())}
        Path(out).write_text(json.dumps(report))
    finally:
        ray.shutdown()
        cluster.shutdown()


def warm_a_worker_on(ray, node_ids) -> None:
    """Start a worker on each node before the search. Otherwise the first node to grant a
    lease may run a whole batch on its one worker (Ray pipelines queued tasks onto a leased
    worker) while the other node is still starting its worker: no task ever lands there."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def node_id():
        return ray.get_runtime_context().get_node_id()

    got = ray.get([node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n, soft=False)).remote() for n in node_ids])
    assert got == list(node_ids), got


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
