"""Device drivers, one file each; found by name through `latency_lab.measure.get_device`."""
