"""A network over many resolutions: the sweep, its jumps, candidate resolutions, the report and the figure."""
