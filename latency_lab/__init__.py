"""latency-lab core: network specs, builders, the measurement API, sweeps, tables, the CLI.

Start at `spec.py` (what a network is), `measure.py` (what a device is and returns) and
`protocol.py` (how samples are taken); `cli.py` maps commands onto these.
"""
