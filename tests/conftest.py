"""Shared fixtures: an isolated cache directory, a tiny network, a synthetic device."""

from __future__ import annotations

import os

import pytest

from latency_lab.measure.api import Device, DeviceInfo, RunResult
from latency_lab.network.spec import NetworkSpec

TINY = {
    "name": "tiny",
    "resolution": 64,
    "num_classes": 10,
    "activation": "relu",
    "stem": {"width": 8, "kernel": 3, "stride": 2},
    "head": {"width": 32},
    "stages": [
        {"width": 8, "depth": 1, "kernel": 3, "expansion": 1, "stride": 1, "se_ratio": 0.25},
        {"width": 16, "depth": 2, "kernel": 5, "expansion": 4, "stride": 2, "se_ratio": 0.0},
    ],
}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache dir, except converted models, shared per session."""
    monkeypatch.setenv("LATENCY_LAB_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture
def tiny() -> NetworkSpec:
    return NetworkSpec.from_dict(TINY)


class CurveDevice(Device):
    """A test device whose latency is a known function of resolution, with seeded noise.

    Used to test the protocol's bookkeeping (order, stopping, resume) exactly; the real
    measurement path is tested with the cpu device.
    """

    name = "curve"

    def __init__(self, noise: float = 0.0, seed: int = 0, fail_after: int | None = None,
                 drift=None):
        import random

        self.rng = random.Random(seed)
        self.noise = noise
        self.calls: list[tuple[str, int, int, int]] = []
        self.fail_after = fail_after
        self.drift = drift  # drift(call number) -> factor common to every point at that time

    def info(self) -> DeviceInfo:
        return DeviceInfo(name="curve", hardware="formula", runtime="python",
                          runtime_version="1", threads=1)

    @staticmethod
    def true_ms(resolution: int) -> float:
        return 1e-4 * resolution ** 2 + (2.0 if resolution >= 200 else 0.0)

    def sample(self, spec, resolution, runs, warmup_runs=1):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append((spec.fingerprint, resolution, runs, warmup_runs))
        base = self.true_ms(resolution) * (self.drift(len(self.calls)) if self.drift else 1.0)
        return RunResult(tuple(base * (1 + self.noise * self.rng.gauss(0, 1)) for _ in range(runs)))


@pytest.fixture
def curve_device():
    return CurveDevice


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray instance on 127.0.0.1 with 2 CPUs, shared by the tests of a session
    (starting one costs ~5-10 s); shut down at the end. Yields the `ray` module."""
    import logging
    import shutil
    import tempfile

    import ray

    from latency_lab.scaleout.ray_executor import NAMESPACE

    # Ray's socket paths must stay short: a temp dir of its own under /tmp, not pytest's.
    temp = tempfile.mkdtemp(prefix="llray-", dir="/tmp")
    tests = os.path.dirname(os.path.abspath(__file__))   # workers import the test helpers
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": tests}}, address="local", num_cpus=2,
             num_gpus=0, include_dashboard=False,
             _node_ip_address="127.0.0.1", object_store_memory=100 * 1024 ** 2,
             _temp_dir=temp, namespace=NAMESPACE, logging_level=logging.WARNING,
             log_to_driver=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
