"""The Ray backend of `rnnscope sweep` (optional extra: pip install 'rnnscope[ray]').

One plain Ray task per grid point, sweep.run_point, retried (RETRIES times) when the worker
running it dies; a retried run resumes from its checkpoint. The tasks run on an existing
cluster (`--address auto|HOST:PORT|ray://HOST:PORT`, or RAY_ADDRESS as `ray job submit` sets
it), where this rnnscope travels with them (runtime_env py_modules), or on a local Ray instance
started here. The run directories must be on a filesystem every node sees: the tasks write
them, the driver reads them.

Nothing leaves the machine from a local instance (docs/sweeps.md says how this was checked):
- RAY_USAGE_STATS_ENABLED=0, set before Ray is imported: usage statistics off;
- the dashboard off (include_dashboard=False); Ray still starts its dashboard process with the
  one module that handles usage statistics, which probes the cloud metadata services
  (169.254.169.254, metadata.google.internal) even when statistics are off: HTTP(S)_PROXY, for
  Ray's processes only, names a closed port on 127.0.0.1, so those requests fail locally;
- RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (read when Ray is imported): single-node mode, in which
  Ray takes 127.0.0.1 as the node's address instead of finding the address that reaches the
  internet, so every Ray process listens and connects on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from ..errors import RnnscopeError
from .pool import BLAS_ENV, STOP_S, cores
from .spec import Point
from .worker import run_point

RETRIES = 2          # a task whose worker dies runs again, resuming its run, this many times
NO_USAGE_STATS = {"RAY_USAGE_STATS_ENABLED": "0"}
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
NO_HTTP = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


def import_ray(local: bool):
    """Ray, imported with its usage statistics off (and, for a local instance, in single-node
    mode on 127.0.0.1)."""
    os.environ.update({**NO_USAGE_STATS, **(LOOPBACK_ONLY if local else {})})
    try:
        import ray
    except ImportError:
        raise RnnscopeError("--backend ray needs Ray; install it with "
                            "pip install 'rnnscope[ray]'") from None
    return ray


class RayPool:
    """Grid points as Ray tasks, at most `workers` at once (default: a local instance's CPUs,
    or every point at once on a cluster, whose scheduler queues them)."""

    def __init__(self, out: Path, workers: int | None, address: str | None) -> None:
        address = address or os.environ.get("RAY_ADDRESS")
        ray = self.ray = import_ray(local=not address)
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address:
                env = {"env_vars": {**BLAS_ENV, **NO_USAGE_STATS},
                       "py_modules": [str(Path(__file__).resolve().parent)]}
                ray.init(address=address, runtime_env=env, **quiet)
            else:  # the local instance's processes inherit this environment (no runtime_env,
                # which would cost a runtime-env agent set-up of several seconds)
                with environ({**BLAS_ENV, **NO_HTTP}):  # "local": never a running cluster
                    ray.init(address="local", num_cpus=workers or cores(),
                             include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise RnnscopeError(f"cannot start or join {where}: {first_line(e)}; check "
                                "--address (auto, HOST:PORT or ray://HOST:PORT) and that "
                                "`ray status` sees the cluster") from None
        self.workers = workers or (sys.maxsize if address else cores())
        self.task = ray.remote(run_point).options(num_cpus=1, max_retries=RETRIES,
                                                  retry_exceptions=False)
        self.out, self.refs = str(out), {}

    def submit(self, point: Point) -> None:
        self.refs[self.task.remote(point, self.out)] = point.name

    def done(self, timeout: float) -> dict[str, str]:
        if not self.refs:
            return {}
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        ended = {}
        for ref in ready:
            name = self.refs.pop(ref)
            try:
                self.ray.get(ref)
                ended[name] = ""
            except self.ray.exceptions.RayError as e:
                ended[name] = f"Ray task failed after {RETRIES} retries: {first_line(e)}"
        return ended

    def stop(self) -> None:
        """Interrupt the running tasks (each run checkpoints), wait for them, leave Ray."""
        for ref in self.refs:
            self.ray.cancel(ref)
        if self.refs:
            self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=STOP_S)
        self.refs.clear()
        self.ray.shutdown()


@contextlib.contextmanager
def environ(values: dict):
    """os.environ with these values inside the block, as it was after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


def first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
