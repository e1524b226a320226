"""Launchers: run the training processes of a grid, several at once, on this machine or on a Ray cluster.

Every run is its own ``python train.py ...`` process whichever launcher starts it, with its output in its own log
file, so the bits of a run do not depend on what runs beside it: the reproducibility key (software, device model,
CPU threads, world size, batch) is the same for a run made alone and one made in a crowd.

- ``LocalLauncher``: up to ``jobs`` processes at once. With ``devices`` (CUDA) each running process gets one GPU of
  its own through ``CUDA_VISIBLE_DEVICES``; on a CPU the caller checks that ``jobs x threads`` fits the cores.
- ``RayLauncher``: each run a Ray task asking for one GPU (or its CPU threads) that runs the same command on
  whichever node Ray picks. The group directory must be on a filesystem every node sees at the same path, and the
  repository and Python environment too (README, "Many runs at once").
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError, one_line

POLL_S = 0.2  # how often the local launcher looks at its processes
STOP_GRACE_S = 10  # SIGTERM, then SIGKILL: how long an interrupted run has to stop
PR_SET_PDEATHSIG = 1  # linux/prctl.h
RAY_TIMEOUT_S = 30.0  # how long --ray-address may take to answer (--ray-timeout)


@dataclass(frozen=True)
class LaunchSpec:
    """How a grid's runs are launched (train.py's --launcher, --jobs, --devices, --ray-address, --ray-timeout);
    None: the default."""

    launcher: str = "local"
    jobs: int | None = None
    devices: str | None = None
    ray_address: str | None = None
    ray_timeout: float | None = None


@dataclass(frozen=True)
class Job:
    """One run of the grid: its name, the command that trains it, and its log (stdout and stderr)."""

    name: str
    command: tuple[str, ...]
    log: Path


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int
    seconds: float


def run_logged(command, log: str | Path, env: dict | None = None) -> tuple[int, float]:
    """Run ``command`` with its output appended to ``log``; returns (exit code, seconds). Also the body of a Ray
    task, so it uses nothing but the standard library."""
    start = time.monotonic()
    with open(log, "ab") as out:
        code = subprocess.run(list(command), stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    return code, time.monotonic() - start


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, as a container or taskset limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_devices(text: str | None) -> list[str] | None:
    """``--devices 0,1`` or ``0-7`` (or a mix: ``0-3,6``) -> CUDA device indices as strings; None stays None."""
    if not text:
        return None
    devices = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            devices += [str(i) for i in range(int(first), int(last or first) + 1)]
    except ValueError:
        raise UserError(f"--devices expects CUDA device indices such as 0,1 or 0-7, got {text!r}") from None
    if not devices or len(set(devices)) != len(devices):
        raise UserError(f"--devices must list distinct CUDA device indices, got {text!r}")
    return devices


class LocalLauncher:
    """Up to ``jobs`` runs at once on this machine; with ``devices``, one GPU per running process."""

    def __init__(self, jobs: int, devices: list[str] | None = None):
        if jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {jobs}")
        if devices is not None and jobs > len(devices):
            raise UserError(f"--jobs {jobs} runs at once but --devices lists {len(devices)} GPU(s): each concurrent "
                            "run needs a GPU of its own; lower --jobs or list more devices")
        self.jobs, self.devices = jobs, devices

    def run(self, jobs: list[Job], on_done: Callable[[Outcome], None]) -> None:
        """Run every job, at most ``self.jobs`` at a time, calling ``on_done`` as each ends (in this thread).
        Interrupted (Ctrl-C, SIGTERM), it stops the running processes before it returns."""
        waiting, running = list(jobs), {}  # running: Popen -> (job, start, device, log file)
        free = list(self.devices or [])
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    job = waiting.pop(0)
                    device = free.pop(0) if self.devices else None
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": device} if device is not None else None
                    log = open(job.log, "ab")
                    process = subprocess.Popen(list(job.command), stdout=log, stderr=subprocess.STDOUT, env=env,
                                               preexec_fn=_stop_with_parent(os.getpid()))
                    running[process] = (job, time.monotonic(), device, log)
                time.sleep(POLL_S)
                for process in [p for p in running if p.poll() is not None]:
                    job, start, device, log = running.pop(process)
                    log.close()
                    if device is not None:
                        free.append(device)
                    on_done(Outcome(job.name, process.returncode, time.monotonic() - start))
        finally:
            _stop(running)


def _stop_with_parent(parent: int):
    """A child's pre-exec hook that makes the kernel send it SIGTERM when the grid process dies, even by SIGKILL, so
    no run goes on training as an orphan (Linux; elsewhere None: a SIGKILLed grid leaves its runs running)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the grid died between fork and prctl: nothing would signal this child
            os._exit(128 + signal.SIGTERM)
    return hook


def _stop(running: dict) -> None:
    """Terminate what is still running (the grid was interrupted): SIGTERM, then SIGKILL after a grace period."""
    for process in running:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process, (_, _, _, log) in running.items():
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class RayLauncher:
    """Each run a Ray task: one GPU (``gpus=True``) or ``threads`` CPUs, the same command, on a Ray cluster.

    address: a running cluster (``ray://host:10001`` or ``host:6379``), or None to start a local one for the grid
    and shut it down afterwards.
    """

    def __init__(self, address: str | None, gpus: bool, threads: int, repo: Path, timeout: float = RAY_TIMEOUT_S):
        if address is not None:
            check_ray_address(address, timeout)
        try:
            import ray
        except ImportError:
            raise UserError("--launcher ray needs Ray: pip install -r requirements-ray.txt (the default launcher, "
                            "local, needs nothing more)") from None
        self.ray, self.address, self.repo = ray, address, repo
        self.resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads}

    def run(self, jobs: list[Job], on_done: Callable[[Outcome], None]) -> None:
        ray = self.ray
        # Workers import run_logged from this repository: put it on their path (the same path on every node).
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(self.repo)}})
        try:
            task = ray.remote(**self.resources)(run_logged)
            pending = {task.remote(job.command, str(job.log)): job for job in jobs}
            try:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    job = pending.pop(done[0])
                    try:
                        code, seconds = ray.get(done[0])
                    except ray.exceptions.RayError as exc:  # the task itself died (node lost, worker killed)
                        with open(job.log, "a") as log:
                            log.write(f"train.py: error: the Ray task of this run failed: {one_line(exc)}\n")
                        code, seconds = -1, 0.0
                    on_done(Outcome(job.name, code, seconds))
            finally:
                for ref in pending:
                    ray.cancel(ref, force=True)
        finally:
            ray.shutdown()


def check_ray_address(address: str, timeout: float) -> None:
    """Refuse a malformed ``--ray-address`` and one where nothing answers within ``timeout`` seconds: Ray itself
    would wait forever, repeating its warnings. (Something that answers but is no Ray head is left to Ray.)"""
    match = re.fullmatch(r"(?:ray://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", address)
    if not match or not 0 < int(match[2]) < 65536:
        raise UserError(f"--ray-address {address!r}: not an address; give HOST:PORT of a running cluster's head "
                        "(HOST:6379, or ray://HOST:10001 for Ray Client), or leave it out for a local cluster")
    host, port = match[1].strip("[]"), int(match[2])
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise UserError(f"--ray-address {address}: no answer from {host}:{port} within {timeout:g} s ({reason}); "
                        "start the cluster there (ray start --head), fix the address, or allow longer with "
                        "--ray-timeout SECONDS") from None


def launcher_for(spec: LaunchSpec, device_type: str, threads: int, repo: Path, runs: int):
    """The launcher of ``spec`` (train.py's ``--launcher``, ``--jobs``, ``--devices``, ``--ray-*``) for a grid of
    ``runs`` runs, checked against the machine: a CPU grid needs ``jobs x threads`` cores (jobs capped at the run
    count: no more runs are ever at once), ``--devices`` needs CUDA."""
    devices = parse_devices(spec.devices)
    if devices is not None and device_type != "cuda":
        raise UserError("--devices gives each concurrent run a GPU, but the runs train on the CPU (no CUDA device, "
                        "or --device cpu); leave out --devices")
    if spec.launcher == "ray":
        if devices is not None or spec.jobs is not None:
            raise UserError("--launcher ray places runs by the resources each asks for (one GPU, or --threads CPUs): "
                            "leave out --jobs and --devices")
        timeout = RAY_TIMEOUT_S if spec.ray_timeout is None else spec.ray_timeout
        if not timeout > 0 or timeout == float("inf"):
            raise UserError(f"--ray-timeout must be a number of seconds > 0, got {timeout}")
        return RayLauncher(spec.ray_address, device_type == "cuda", threads, repo, timeout)
    if spec.ray_address is not None or spec.ray_timeout is not None:
        raise UserError("--ray-address and --ray-timeout belong to --launcher ray")
    jobs = spec.jobs if spec.jobs is not None else len(devices) if devices else 1
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    jobs = min(jobs, runs)
    cores = available_cores()
    if device_type != "cuda" and jobs * threads > cores:
        raise UserError(f"--jobs {jobs} x --threads {threads} = {jobs * threads} threads, but this machine gives "
                        f"{cores} core(s): runs would share cores and each be slower; lower --jobs or --threads "
                        "(the thread count is part of a CPU run's reproducibility key)")
    return LocalLauncher(jobs, devices)


def python_command(*args: str) -> tuple[str, ...]:
    """``python ARGS`` with this interpreter (the grid's children use the grid's environment)."""
    return (sys.executable, *args)
