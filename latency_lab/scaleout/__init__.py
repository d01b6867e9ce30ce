"""Where work runs: executors (this process, local processes, Ray), device actors, sweep plans
across devices."""
