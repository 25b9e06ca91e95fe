"""Running artifacts on devices other than the host, one long-lived worker per device.

An emulated device's start-up (the emulated Python importing numpy, LiteRT and ONNX
Runtime: 3 to 4 s) is most of its cost, so each device keeps one worker for the whole run
and is fed every artifact. Before its first artifact the worker runs the known-answer
self-test; a device whose emulator fails it is refused for the run, with the reason.
A worker that crashes or hangs fails that artifact's cell and is restarted for the next.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgekit.devices import Profile
from edgekit.errors import DeviceUnavailable
from edgekit.worker import Worker




class DeviceWorkers:
    def __init__(self, profiles: list[Profile], host_rt: Worker | None = None, host_tf: Worker | None = None) -> None:
        self.profiles = {p.name: p for p in profiles}
        self._workers: dict[str, Worker] = {}
        self._refused: dict[str, str] = {}
        self._checked: set[str] = set()
        self.host_rt, self.host_tf = host_rt, host_tf
        self.self_tests: dict[str, str] = {}

    def _qemu_worker(self, p: Profile) -> Worker:
        from edgekit.devices.arm import find_env, guest_worker

        env_dir, why = find_env(p)
        if env_dir is None:
            raise DeviceUnavailable(f"{p.name}: {why}")
        return guest_worker(env_dir, p.qemu_cpu or "max", f"{p.name} (emulated)", p.emulator)

    def worker(self, name: str) -> Worker:
        """The device's worker, started (and self-tested) on first use."""
        if name in self._refused:
            raise DeviceUnavailable(self._refused[name])
        p = self.profiles[name]
        if name not in self._workers:
            if p.kind == "qemu":
                self._workers[name] = self._qemu_worker(p)
            elif p.kind == "cuda":
                if self.host_rt is None:
                    raise DeviceUnavailable("cuda: no runtime worker")
                return self.host_rt
            else:
                raise DeviceUnavailable(f"{name}: the host runs in the main workers")
        w = self._workers[name]
        if p.kind == "qemu" and name not in self._checked:
            from edgekit.devices.selftest import self_test

            ok, detail = self_test(w, self.host_rt)
            self._checked.add(name)
            self.self_tests[name] = detail
            if not ok:
                self._refused[name] = f"{name} refused: the emulator failed its known-answer self-test ({detail})"
                w.close()
                raise DeviceUnavailable(self._refused[name])
        return w

    def run(self, name: str, runtime: str, path: str, feeds: Mapping[str, np.ndarray], repeats: int,
            timeout: float, label: str = "") -> dict[str, Any]:
        p = self.profiles[name]
        tag = f"run:{name}:{label}" if label else f"run:{name}"
        if p.kind == "cuda":
            if runtime == "onnxruntime":
                return self.worker(name).call("edgekit.devices.cuda:run_onnx_cuda", path, feeds, repeats,
                                              timeout=timeout, tag=tag)
            if self.host_tf is None:
                raise DeviceUnavailable("cuda: no TensorFlow worker")
            return self.host_tf.call("edgekit.devices.cuda:run_tf_gpu", runtime, path, feeds, repeats,
                                     timeout=timeout, tag=tag)
        options = {"threads": p.threads} if (p.threads and runtime == "litert") else {}
        return self.worker(name).call("edgekit.tasks:run_artifact", runtime, path, dict(feeds), repeats, options,
                                      timeout=timeout, tag=tag)

    def close(self) -> None:
        for w in self._workers.values():
            w.close()
        self._workers.clear()
