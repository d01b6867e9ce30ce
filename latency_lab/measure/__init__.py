"""The measurement API, the protocol on a noisy machine, statistics, drift, and the SQLite store."""
