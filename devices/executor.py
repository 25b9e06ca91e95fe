"""Running artifacts on devices other than the host, one long-lived worker per device.

An emulated device's start-up (the emulated Python importing numpy, LiteRT and ONNX
Runtime: 3 to 4 s) is most of its cost, so each device keeps one worker for the whole run
and is fed every artifact. Before its first artifact the worker runs the known-answer
self-test; a device whose emulator fails it is refused for the run, with the reason.
A worker that crashes or hangs fails that artifact's cell and is restarted for the next.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from edgekit.devices import Profile
from edgekit.errors import DeviceUnavailable
from edgekit.worker import Worker

# How an artifact runs on a device: (workers, profile, runtime, path, feeds, repeats,
# timeout, tag) -> {"outputs", "latency", ...}.
Route = Callable[["DeviceWorkers", Profile, str, str, Mapping[str, np.ndarray], int, float, str], dict[str, Any]]


def _in_guest(dw: "DeviceWorkers", p: Profile, runtime: str, path: str, feeds: Mapping[str, np.ndarray],
              repeats: int, timeout: float, tag: str) -> dict[str, Any]:
    """In the device's own (emulated) Python: the host's runners, threads as the profile says
    for LiteRT."""
    options = {"threads": p.threads} if (p.threads and runtime == "litert") else {}
    return dw.worker(p.name).call("edgekit.tasks:run_artifact", runtime, path, dict(feeds), repeats, options,
                                  timeout=timeout, tag=tag)


def _onnx_on_gpu(dw: "DeviceWorkers", p: Profile, runtime: str, path: str, feeds: Mapping[str, np.ndarray],
                 repeats: int, timeout: float, tag: str) -> dict[str, Any]:
    return dw.worker(p.name).call("edgekit.devices.cuda:run_onnx_cuda", path, feeds, repeats, timeout=timeout, tag=tag)


def _tf_on_gpu(dw: "DeviceWorkers", p: Profile, runtime: str, path: str, feeds: Mapping[str, np.ndarray],
               repeats: int, timeout: float, tag: str) -> dict[str, Any]:
    if dw.host_tf is None:
        raise DeviceUnavailable("cuda: no TensorFlow worker")
    return dw.host_tf.call("edgekit.devices.cuda:run_tf_gpu", runtime, path, feeds, repeats, timeout=timeout, tag=tag)


# (device kind, runtime) -> the function that runs that runtime's artifacts on such a device.
# The host is not here: it runs in the main workers.
ROUTES: dict[tuple[str, str], Route] = {
    ("qemu", "litert"): _in_guest,
    ("qemu", "onnxruntime"): _in_guest,
    ("cuda", "onnxruntime"): _onnx_on_gpu,
    ("cuda", "tf-savedmodel"): _tf_on_gpu,
    ("cuda", "keras"): _tf_on_gpu,
    ("cuda", "keras-weights"): _tf_on_gpu,
}


def route(p: Profile, runtime: str) -> Route:
    """The function that runs ``runtime`` on device ``p``; ``DeviceUnavailable`` if none does."""
    fn = ROUTES.get((p.kind, runtime))
    if fn is None:
        raise DeviceUnavailable(f"{p.name}: a {p.kind} device has no way to run {runtime}")
    return fn


class DeviceWorkers:
    def __init__(self, profiles: list[Profile], host_rt: Worker | None = None, host_tf: Worker | None = None) -> None:
        self.profiles = {p.name: p for p in profiles}
        self._workers: dict[str, Worker] = {}
        self._refused: dict[str, str] = {}
        self._checked: set[str] = set()
        self.host_rt, self.host_tf = host_rt, host_tf
        self.self_tests: dict[str, str] = {}

    def _qemu_worker(self, p: Profile) -> Worker:
        """The emulated device's own worker, kept for the run and self-tested before its first
        artifact."""
        from edgekit.devices.arm import find_env, guest_worker

        if p.name not in self._workers:
            env_dir, why = find_env(p)
            if env_dir is None:
                raise DeviceUnavailable(f"{p.name}: {why}")
            self._workers[p.name] = guest_worker(env_dir, p.qemu_cpu or "max", f"{p.name} (emulated)", p.emulator)
        w = self._workers[p.name]
        if p.name not in self._checked:
            self._self_test(p, w)
        return w

    def _self_test(self, p: Profile, w: Worker) -> None:
        """Refuse the device for the run unless its worker passes the known-answer self-test."""
        from edgekit.devices.selftest import self_test

        ok, detail = self_test(w, self.host_rt)
        self._checked.add(p.name)
        self.self_tests[p.name] = detail
        if not ok:
            self._refused[p.name] = f"{p.name} refused: the emulator failed its known-answer self-test ({detail})"
            w.close()
            raise DeviceUnavailable(self._refused[p.name])

    def _cuda_worker(self, p: Profile) -> Worker:
        """The host's runtime worker (not kept here: the pool closes it)."""
        if self.host_rt is None:
            raise DeviceUnavailable("cuda: no runtime worker")
        return self.host_rt

    # device kind -> how its worker is had; the host runs in the main workers
    _START: dict[str, Callable[["DeviceWorkers", Profile], Worker]] = {"qemu": _qemu_worker, "cuda": _cuda_worker}

    def worker(self, name: str) -> Worker:
        """The device's worker, started (and self-tested) on first use."""
        if name in self._refused:
            raise DeviceUnavailable(self._refused[name])
        p = self.profiles[name]
        return self._start_for(p)(self, p)

    def _start_for(self, p: Profile) -> Callable[["DeviceWorkers", Profile], Worker]:
        start = self._START.get(p.kind)
        if start is None:
            raise DeviceUnavailable(f"{p.name}: the host runs in the main workers")
        return start

    def run(self, name: str, runtime: str, path: str, feeds: Mapping[str, np.ndarray], repeats: int,
            timeout: float, label: str = "") -> dict[str, Any]:
        p = self.profiles[name]
        tag = f"run:{name}:{label}" if label else f"run:{name}"
        self._start_for(p)  # a device of a kind that runs here at all
        return route(p, runtime)(self, p, runtime, path, feeds, repeats, timeout, tag)

    def close(self) -> None:
        for w in self._workers.values():
            w.close()
        self._workers.clear()
