"""Latency per GMAC of the direct-builder RBIS rerun's measurements against the recorded
converter run's, by 5-minute window: how much the shared machine's load moved the latencies
the search compared (results/cpu/rbis-b0-to-b1-direct/README.md, "Why the winner differs").

Reads the two committed latency tables, results/cpu/latency-table-b0-search-direct.csv (the
rerun) and results/cpu/latency-table-b0-search.csv (the recorded run), and prints; the
committed output is results/cpu/rbis-b0-to-b1-direct/analyse.txt:

    .venv/bin/python benchmarks/rbis_direct_analyse.py > results/cpu/rbis-b0-to-b1-direct/analyse.txt
"""
import json
from pathlib import Path

import pandas as pd

from latency_lab.network.complexity import macs
from latency_lab.network.spec import NetworkSpec

CPU = Path(__file__).resolve().parents[1] / "results" / "cpu"

new = pd.read_csv(CPU / "latency-table-b0-search-direct.csv")
old = pd.read_csv(CPU / "latency-table-b0-search.csv")
for name, d in (("direct rerun", new), ("recorded", old)):
    d["ci_pct"] = 100 * (d.ci_high_ms - d.ci_low_ms) / 2 / d.latency_ms
    d["gmacs"] = [macs(NetworkSpec.from_dict(json.loads(j)), r) / 1e9
                  for j, r in zip(d.network_json, d.resolution)]
    d["ms_per_gmac"] = d.latency_ms / d.gmacs
    q = d.ms_per_gmac.quantile([.1, .5, .9])
    print(f"{name}: {len(d)} points, median CI +-{d.ci_pct.median():.2f}%, median samples "
          f"{d.n_samples.median():.0f}, ms/GMAC median {q[.5]:.1f} (p10 {q[.1]:.1f}, p90 {q[.9]:.1f})")
m = new.merge(old[["fingerprint", "resolution", "latency_ms"]], on=["fingerprint", "resolution"],
              suffixes=("", "_old"))
r = m.latency_ms / m.latency_ms_old
print(f"same network and resolution in both runs: {len(m)}, latency rerun/recorded median "
      f"{r.median():.2f} (range {r.min():.2f}..{r.max():.2f})")
new["window"] = pd.to_datetime(new.measured_at).dt.floor("5min").dt.strftime("%H:%M")
print(new.groupby("window").agg(points=("ms_per_gmac", "size"),
                                ms_per_gmac=("ms_per_gmac", "median"),
                                resolutions=("resolution", lambda s: sorted(set(s))))
      .round(1).to_string())
