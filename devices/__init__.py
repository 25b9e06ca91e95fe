"""Devices: where a runner executes. A profile (TOML, shipped in ``profiles/`` or loaded from
a user's path) names the architecture, how to reach it (the host, a qemu-emulated ARM64
CPU, a CUDA GPU), the runtimes it runs and tolerance overrides.

``x86-cpu`` is this machine. ARM64 profiles run LiteRT and ONNX Runtime in a Python
userland under qemu user-mode emulation, built once by ``edgekit devices setup arm64``.
``cuda`` runs ONNX Runtime's CUDA provider and TensorFlow on the GPU, and a cell counts
only when the GPU was really used.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit import errors

PROFILE_DIR = Path(__file__).parent / "profiles"
USER_PROFILES_ENV = "EDGEKIT_DEVICE_PROFILES"  # extra profile files or folders, os.pathsep-separated
HOST = "x86-cpu"
_KEYS = ("name", "description", "kind", "arch", "qemu_cpu", "runtimes", "threads", "tolerance", "emulator")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    kind: str  # host | qemu | cuda
    arch: str
    runtimes: tuple[str, ...]
    qemu_cpu: str | None = None
    threads: int | None = None
    tolerance: dict[str, tuple[float, float]] = field(default_factory=dict)  # policy -> (atol, rtol)
    emulator: str | None = None  # a qemu-aarch64 to use instead of the set-up one (tests, pre-built)
    path: str = ""

    @property
    def emulated(self) -> bool:
        return self.kind == "qemu"

    def runs(self, runtime: str) -> bool:
        """Whether this device runs artifacts of the host runtime ``runtime``."""
        return runtime in self.runtimes

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "arch": self.arch, "qemu_cpu": self.qemu_cpu,
                "emulated": self.emulated, "runtimes": list(self.runtimes), "threads": self.threads}


def _load(path: Path) -> Profile:
    from edgekit.safeparse import load_toml, read_text

    d = load_toml(read_text(path, "device profile"), f"device profile {path}")
    unknown = [k for k in d if k not in _KEYS]
    if unknown:
        raise errors.InputError(f"device profile {path}: unknown key(s) {unknown}; known: {', '.join(_KEYS)}")
    for k in ("name", "kind", "arch", "runtimes"):
        if k not in d:
            raise errors.InputError(f"device profile {path}: missing key {k!r}")
    if d["kind"] not in _AVAILABILITY:
        raise errors.InputError(f"device profile {path}: kind must be one of {', '.join(_AVAILABILITY)}")
    if d["kind"] == "qemu" and not d.get("qemu_cpu"):
        raise errors.InputError(f"device profile {path}: a qemu profile needs qemu_cpu (e.g. cortex-a76)")
    tol = {}
    for policy, t in d.get("tolerance", {}).items():
        tol[policy] = (float(t.get("atol", 0.0)), float(t.get("rtol", 0.0)))
    return Profile(d["name"], d.get("description", ""), d["kind"], d["arch"], tuple(d["runtimes"]),
                   d.get("qemu_cpu"), d.get("threads"), tol, d.get("emulator"), str(path))


def load_profiles(extra: list[str] | None = None) -> dict[str, Profile]:
    """Built-in profiles, then user ones (``EDGEKIT_DEVICE_PROFILES`` and ``extra``: files or
    folders of ``*.toml``); a user profile with a built-in's name replaces it."""
    paths = sorted(PROFILE_DIR.glob("*.toml"))
    for item in [*filter(None, os.environ.get(USER_PROFILES_ENV, "").split(os.pathsep)), *(extra or [])]:
        p = Path(item)
        if p.is_dir():
            paths += sorted(p.glob("*.toml"))
        elif p.is_file():
            paths.append(p)
        else:
            raise errors.InputError(f"device profile {item} does not exist")
    out: dict[str, Profile] = {}
    for p in paths:
        prof = _load(p)
        out[prof.name] = prof
    return out


def _host_availability(profile: Profile) -> tuple[bool, str]:
    m = platform.machine().lower()
    if profile.arch in (m, {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)):
        return True, f"native {platform.machine()}"
    return False, f"this machine is {platform.machine()}, not {profile.arch}"


def _qemu_availability(profile: Profile) -> tuple[bool, str]:
    from edgekit.devices.arm import find_env

    env, why = find_env(profile)
    return (env is not None), why


def _cuda_availability(profile: Profile) -> tuple[bool, str]:
    from edgekit.devices.cuda import cuda_status

    return cuda_status()


# The device kinds: each -> whether a device of that kind is usable here (and why not / what it is)
_AVAILABILITY: dict[str, Callable[[Profile], tuple[bool, str]]] = {
    "host": _host_availability, "qemu": _qemu_availability, "cuda": _cuda_availability}


def availability(profile: Profile) -> tuple[bool, str]:
    """(available, why not / what it is). Cheap: no emulator or GPU process is started."""
    return _AVAILABILITY[profile.kind](profile)


def resolve(spec: str | list[str] | None, profiles: dict[str, Profile] | None = None) -> list[Profile]:
    """``"x86-cpu,arm64-cortex-a76"`` or ``all-available`` -> profiles, the host first.
    A named device that is not available is an ``InputError`` saying what to run."""
    profiles = profiles or load_profiles()
    if not spec:
        return [profiles[HOST]]
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names == ["all-available"]:
        chosen = [p for p in profiles.values() if availability(p)[0]]
    else:
        unknown = [n for n in names if n not in profiles]
        if unknown:
            raise errors.InputError(f"unknown device {', '.join(map(repr, unknown))}; known: {', '.join(profiles)} "
                                    "(or all-available; see 'edgekit devices')")
        chosen = []
        for n in dict.fromkeys(names):
            ok, why = availability(profiles[n])
            if not ok:
                raise errors.InputError(f"device {n} is not available: {why}")
            chosen.append(profiles[n])
    host = [p for p in chosen if p.name == HOST]
    rest = [p for p in chosen if p.name != HOST]
    return [profiles[HOST]] + rest if not host else host + rest
