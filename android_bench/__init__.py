"""What latency-lab runs on an Android phone (run_bench.sh); shipped as package data."""
