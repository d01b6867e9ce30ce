"""Recorded latencies to search against: latency tables and per-block lookup tables (LUT)."""
