"""The emulated ARM64 environment: a qemu user-mode emulator, an arm64 Python userland and
the aarch64 wheels of numpy, ai-edge-litert and onnxruntime at the host's versions.

Built once by ``edgekit devices setup arm64`` into the user's cache directory from Debian
packages and PyPI wheels only:

- the emulator: qemu-aarch64 from Debian trixie's ``qemu-user`` (version 10), fetched with
  ``apt-get download`` through a private apt configuration (the host's apt is not touched).
  Older emulators are not trusted: bookworm's 7.2 shows the guest the host's CPU and computes
  some int8 kernels wrongly (see FIELD-NOTES);
- the userland: ``mmdebstrap --variant=extract --arch=arm64`` of Python 3.11 from bookworm
  (no chroot, no binfmt registration, no maintainer scripts), its stdlib byte-compiled;
- the wheels: ``pip install --target`` with the aarch64 manylinux tags, pinned to the host's
  versions.

The environment is complete only when ``env.json`` exists (written last, after the
known-answer self-test passed); anything else in the cache is a partial build and is
rebuilt. ``EDGEKIT_ARM64_ENV`` points to a pre-built environment instead.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edgekit import errors

ENV_VAR = "EDGEKIT_ARM64_ENV"
DEBIAN_MIRROR = os.environ.get("EDGEKIT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
EMULATOR_SUITE = "trixie"
USERLAND_SUITE = "bookworm"
PYTHON = "python3.11"
GUEST_PACKAGES = ("numpy", "ai-edge-litert", "onnxruntime")
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
ENV_VERSION = 1
Say = Callable[[str], None]


def cache_root() -> Path:
    base = os.environ.get("EDGEKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgekit")
    return Path(base)


def host_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in GUEST_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise errors.MissingDependencyError(f"{name} is not installed on the host: the ARM environment pins "
                                                "the host's versions (pip install edgekit)") from None
    return out


def default_env_dir() -> Path:
    v = host_versions()
    tag = "-".join(f"{k}{v[k]}" for k in sorted(v))
    return cache_root() / "arm64" / f"py311-{tag}"


def _read_env(d: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((d / "env.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("env_version") != ENV_VERSION:
        return None
    for rel in ("qemu-aarch64", f"sysroot/usr/bin/{PYTHON}", "site/numpy", "site/onnxruntime", "site/ai_edge_litert"):
        if not (d / rel).exists():
            return None
    return meta


def find_env(profile: Any = None) -> tuple[Path | None, str]:
    """The complete environment to use, or None and what to run."""
    pre = os.environ.get(ENV_VAR)
    if pre:
        d = Path(pre)
        meta = _read_env(d)
        if meta is None:
            return None, f"{ENV_VAR}={pre} is not a complete edgekit ARM64 environment (no valid env.json)"
    else:
        try:
            d = default_env_dir()
        except errors.EdgekitError as exc:
            return None, str(exc)
        meta = _read_env(d)
        if meta is None:
            return None, "the emulated ARM64 environment is not set up: run 'edgekit devices setup arm64' (once; ~2 min, ~270 MB)"
    try:
        want = host_versions()
    except errors.EdgekitError as exc:
        return None, str(exc)
    if meta.get("versions") != want:
        return None, (f"the ARM64 environment in {d} has {meta.get('versions')}, the host {want}: "
                      "run 'edgekit devices setup arm64' again")
    bad = meta.get("refused_cpus", {})
    if profile is not None and getattr(profile, "qemu_cpu", None) in bad and not getattr(profile, "emulator", None):
        return None, f"the emulator failed its self-test as {profile.qemu_cpu}: {bad[profile.qemu_cpu]}"
    return d, f"emulated by qemu {meta.get('qemu_version', '?')} in {d}"


def guest_worker(env_dir: Path, qemu_cpu: str, name: str, emulator: str | None = None) -> Any:
    """A worker running the arm64 Python under the emulator as ``qemu_cpu``, in a clean
    environment (nothing of the host's Python reaches the guest). ``-P``: the working
    directory is not put on the path (a source checkout there would shadow edgekit)."""
    from edgekit.worker import CRASH_ENV, Worker

    env = {
        "QEMU_LD_PREFIX": str(env_dir / "sysroot"),
        "QEMU_CPU": qemu_cpu,
        "PYTHONPATH": os.pathsep.join([str(env_dir / "site"), edgekit_guest_path()]),
        "PYTHONNOUSERSITE": "1",
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "TMPDIR": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
    }
    if os.environ.get(CRASH_ENV):  # fault injection reaches the guest too (tests)
        env[CRASH_ENV] = os.environ[CRASH_ENV]
    python = [emulator or str(env_dir / "qemu-aarch64"), str(env_dir / "sysroot" / "usr" / "bin" / PYTHON), "-P"]
    return Worker(name, env, python=python, clean_env=True)


_GUEST_PATH: str | None = None


def edgekit_guest_path() -> str:
    """A folder holding only ``edgekit`` (links to this installation's files), for the guest's
    path: the host's site-packages, with its x86 extensions, must not be on it. The component
    packages (devices, converters, quantize) are linked where the package expects them,
    whether edgekit is installed normally or in editable mode."""
    global _GUEST_PATH
    if _GUEST_PATH is not None and Path(_GUEST_PATH, "edgekit").is_dir():
        return _GUEST_PATH
    import atexit
    import importlib

    import edgekit

    pkg = Path(edgekit.__file__).resolve().parent
    d = Path(tempfile.mkdtemp(prefix="edgekit-guest-path-"))
    try:
        root = d / "edgekit"
        root.mkdir()
        for entry in pkg.iterdir():
            if entry.name != "__pycache__":
                (root / entry.name).symlink_to(entry)
        for sub in ("devices", "converters", "quantize"):
            target = Path(importlib.import_module(f"edgekit.{sub}").__file__).resolve().parent
            link = root / sub
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)
    except OSError as exc:
        shutil.rmtree(d, ignore_errors=True)
        raise errors.WriteFailure(f"cannot prepare {d} for the emulated worker: {exc.strerror}") from None
    atexit.register(shutil.rmtree, d, True)
    _GUEST_PATH = str(d)
    return _GUEST_PATH


# ---------------------------------------------------------------------------------------------
# setup

def _run(cmd: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=1800)
    except FileNotFoundError:
        raise errors.MissingDependencyError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise errors.EdgekitError(f"{what}: {cmd[0]} did not finish within 30 min") from None
    if p.returncode != 0:
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-3:])
        raise errors.EdgekitError(f"{what} failed (exit {p.returncode}): {tail[-600:]}")
    return p.stdout


def _fetch_emulator(work: Path, say: Say) -> str:
    apt = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "etc" / "sources.list").write_text(f"deb {DEBIAN_MIRROR} {EMULATOR_SUITE} main\n")
    opts = [f"-o=Dir::Etc::SourceList={apt / 'etc' / 'sources.list'}", "-o=Dir::Etc::SourceParts=/dev/null",
            f"-o=Dir::State::Lists={apt / 'lists'}", f"-o=Dir::Cache={apt / 'cache'}", "-o=Debug::NoLocking=1",
            "-o=APT::Sandbox::User=root" if os.getuid() == 0 else "-o=APT::Sandbox::User=" + str(os.getuid()),
            "-q"]
    say(f"emulator: Debian {EMULATOR_SUITE}'s qemu-user (private apt configuration)")
    _run(["apt-get", *opts, "update"], "apt-get update (private configuration)")
    _run(["apt-get", *opts, "download", "qemu-user"], "apt-get download qemu-user", cwd=work)
    deb = next(work.glob("qemu-user_*.deb"))
    _run(["dpkg-deb", "-x", str(deb), str(work / "qemu-deb")], "dpkg-deb -x qemu-user")
    shutil.copy2(work / "qemu-deb" / "usr" / "bin" / "qemu-aarch64", work / "env" / "qemu-aarch64")
    shutil.rmtree(work / "qemu-deb", ignore_errors=True)
    deb.unlink()
    out = _run([str(work / "env" / "qemu-aarch64"), "--version"], "qemu-aarch64 --version")
    return out.splitlines()[0].split("version", 1)[-1].strip().split()[0]


def _build_userland(work: Path, say: Say) -> None:
    say(f"userland: {PYTHON} for arm64 from Debian {USERLAND_SUITE} (mmdebstrap --variant=extract)")
    if shutil.which("mmdebstrap") is None:
        if os.getuid() == 0 and shutil.which("apt-get"):
            say("  installing mmdebstrap (apt-get install mmdebstrap)")
            _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"], "apt-get install mmdebstrap")
        else:
            raise errors.MissingDependencyError("mmdebstrap is needed to extract the arm64 userland: "
                                                "sudo apt-get install mmdebstrap (or set EDGEKIT_ARM64_ENV to a pre-built environment)")
    _run(["mmdebstrap", "--quiet", "--variant=extract", "--arch=arm64",
          f"--include={PYTHON}-minimal,lib{PYTHON}-stdlib,libstdc++6,libgcc-s1", USERLAND_SUITE,
          str(work / "env" / "sysroot"), DEBIAN_MIRROR], "mmdebstrap (arm64 userland)")
    # Extract mode leaves the stdlib uncompiled; the host's 3.11 writes the same bytecode, and
    # every emulated start would otherwise pay seconds compiling it.
    stdlib = work / "env" / "sysroot" / "usr" / "lib" / PYTHON
    if sys.version_info[:2] == (3, 11):
        _run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(stdlib)], "compileall (guest stdlib)")


def _install_wheels(work: Path, versions: dict[str, str], say: Say) -> None:
    pins = [f"{k}=={v}" for k, v in versions.items()]
    say(f"wheels: {', '.join(pins)} for aarch64 (pip install --target)")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-warn-script-location",
           "--target", str(work / "env" / "site"), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", "311", "--abi", "cp311"]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    _run(cmd + pins, "pip install (aarch64 wheels)")
    if sys.version_info[:2] == (3, 11):
        _run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(work / "env" / "site")], "compileall (wheels)")


def _du(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def _build(work: Path, versions: dict[str, str], say: Say) -> tuple[str, dict[str, float]]:
    """The emulator, the guest userland and the wheels in ``work/env``; returns the qemu
    version and the seconds each step took."""
    (work / "env").mkdir()
    steps = {}
    t = time.perf_counter()
    qemu_version = _fetch_emulator(work, say)
    steps["emulator_s"] = round(time.perf_counter() - t, 1)
    if int(qemu_version.split(".")[0]) < 8:
        raise errors.EdgekitError(f"qemu {qemu_version} is too old to trust (needs 8 or newer; see FIELD-NOTES)")
    t = time.perf_counter()
    _build_userland(work, say)
    steps["userland_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    _install_wheels(work, versions, say)
    steps["wheels_s"] = round(time.perf_counter() - t, 1)
    return qemu_version, steps


def _self_test_cpus(env: Path, cpus: list[str], say: Say) -> tuple[dict[str, str], dict[str, str]]:
    """The known-answer self-test as each emulated CPU: (detail per CPU, those refused)."""
    from edgekit.devices.selftest import self_test

    results, refused = {}, {}
    for cpu in cpus:
        say(f"self-test as {cpu}: known answers of float and int8 kernels against the host")
        w = guest_worker(env, cpu, f"self-test {cpu}")
        try:
            ok, detail = self_test(w)
        finally:
            w.close()
        results[cpu] = detail
        if not ok:
            refused[cpu] = detail
            say(f"  REFUSED: {detail}")
        else:
            say(f"  ok: {detail}")
    return results, refused


def setup(say: Say | None = None, force: bool = False, cpus: list[str] | None = None) -> dict[str, Any]:
    """Build the environment (a no-op when a complete one for the host's versions exists).
    Returns its description: path, versions, disk used, seconds taken, self-test results."""
    say = say or (lambda _m: None)
    versions = host_versions()
    target = Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else default_env_dir()
    meta = _read_env(target)
    if meta is not None and meta.get("versions") == versions and not force:
        say(f"already set up in {target} (nothing to do)")
        return {**meta, "path": str(target), "reused": True}
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise errors.InputError(f"the emulated ARM64 environment is built on x86-64 hosts; this is {platform.machine()}")
    if target.exists():
        say(f"removing the incomplete or outdated environment in {target}")
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".arm64-build-", dir=target.parent))
    try:
        qemu_version, steps = _build(work, versions, say)
        env = work / "env"
        results, refused = _self_test_cpus(env, cpus or ["cortex-a53", "cortex-a72", "cortex-a76", "neoverse-n1"], say)
        meta = {
            "env_version": ENV_VERSION, "versions": versions, "qemu_version": qemu_version,
            "userland": f"Debian {USERLAND_SUITE} {PYTHON}", "self_test": results, "refused_cpus": refused,
            "disk_bytes": _du(env), "setup_s": round(time.perf_counter() - t0, 1), "steps": steps,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (env / "env.json").write_text(json.dumps(meta, indent=2) + "\n")  # last: marks it complete
        os.replace(env, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"ARM64 environment ready in {target}: {meta['disk_bytes'] / 1e6:.0f} MB, {meta['setup_s']:.0f} s")
    return {**meta, "path": str(target), "reused": False}
