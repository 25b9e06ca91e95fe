"""Long-lived child processes that run native code (converters, interpreters).

A converter or interpreter can segfault, abort or hang on some graphs. Everything that
can take a process down runs in a worker; the parent only orchestrates. When a worker
dies, the call in flight raises ``WorkerCrashed`` naming the signal and the last lines the
worker printed, and the next call starts a fresh worker. A worker imports its heavy
libraries once and serves many calls, so TensorFlow's import is paid once per run, not
once per artifact.

Calls are ``"module:function"`` strings with picklable arguments; inside a worker,
``report(msg)`` sends a progress line to the parent.
"""
from __future__ import annotations

import atexit
import importlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

from edgekit import errors

# Set in a worker process: the connection back to the parent.
_CHILD_CONN: Connection | None = None
# Environment variable read by workers: a call tag (e.g. "export:tflite") at which the
# worker kills itself with SIGSEGV, or hangs with "TAG=hang". It exists to test crash and
# timeout handling end to end.
CRASH_ENV = "EDGEKIT_INJECT_CRASH"
# Modules a worker imports as soon as it starts (comma-separated), before its first call.
PRELOAD_ENV = "EDGEKIT_PRELOAD"
# How long a fresh worker may take to import its libraries before the first call runs.
HEARTBEAT_S = 10.0  # a progress line at least this often during a long call
STARTUP_LIMIT_S = 300.0

_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "KERAS_BACKEND": "tensorflow",
    "PYTHONUNBUFFERED": "1",
    "ABSL_MIN_LOG_LEVEL": "3",
}


def report(message: str) -> None:
    """Send a progress line to the parent (no-op outside a worker)."""
    if _CHILD_CONN is not None:
        _CHILD_CONN.send(("progress", message))


def _signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class Worker:
    """One child Python process serving calls until closed."""

    def __init__(self, name: str, env: dict[str, str] | None = None, python: list[str] | None = None,
                 clean_env: bool = False) -> None:
        """``python``: the interpreter command (default: this one), e.g. an emulator running
        another architecture's Python. ``clean_env``: start from an empty environment (plus
        ``env``) instead of this process's, so that nothing of the host's Python leaks in."""
        self.name = name
        self._env = dict(env or {})
        self._python = list(python) if python else [sys.executable]
        self._clean_env = clean_env
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._log: Any = None
        self._lock = threading.Lock()
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.alive:
            return
        self._cleanup()
        parent_sock, child_sock = socket.socketpair()
        env = {} if self._clean_env else dict(os.environ)
        env.update(_QUIET_ENV)
        env.update(self._env)
        self._log = tempfile.TemporaryFile(prefix=f"edgekit-{self.name}-", suffix=".log")
        self._proc = subprocess.Popen(
            [*self._python, "-m", "edgekit.worker", str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the parent, which then stops us
        )
        child_sock.close()
        self._conn = Connection(parent_sock.detach())
        self.starts += 1

    def log_tail(self, lines: int = 6) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - 16384))
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        keep = [ln for ln in text.splitlines() if ln.strip()]
        return "\n".join(keep[-lines:])

    def call(
        self,
        func: str,
        *args: Any,
        timeout: float | None = None,
        tag: str = "",
        on_progress: Callable[[str], None] | None = None,
        heartbeat_s: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``func(*args, **kwargs)`` in the worker and return its result.

        Raises the worker's ``EdgekitError`` as the same class, ``WorkerCrashed`` when the
        worker dies or exceeds ``timeout`` seconds (it is then killed). ``heartbeat_s``: while
        nothing else is heard, tell ``on_progress`` every so many seconds what is being waited
        for (a fresh worker's import of TensorFlow, then the call itself); by default every
        ``HEARTBEAT_S`` seconds wherever ``on_progress`` is given, so that no long step is silent.
        """
        if heartbeat_s is None and on_progress is not None:
            heartbeat_s = HEARTBEAT_S
        with self._lock:
            self.start()
            assert self._conn is not None and self._proc is not None
            try:
                self._conn.send(("call", func, args, kwargs, tag))
            except (BrokenPipeError, ConnectionResetError, OSError):
                return self._crashed(func, tag)
            return self._await_reply(func, tag, timeout, on_progress, heartbeat_s)

    def _await_reply(self, func: str, tag: str, timeout: float | None,
                     on_progress: Callable[[str], None] | None, heartbeat_s: float | None) -> Any:
        """The sent call's result: progress passed on, a heartbeat while nothing is heard,
        the worker killed when it outlives its limit."""
        assert self._conn is not None and self._proc is not None
        # The step's clock starts when the worker takes the call: starting a fresh worker
        # (importing TensorFlow on a busy machine) is not the step's time. Startup has
        # its own, generous limit.
        deadline = time.monotonic() + max(STARTUP_LIMIT_S, timeout or 0.0)
        started = False
        t_call = last_heard = time.monotonic()
        while True:
            if heartbeat_s and on_progress is not None and time.monotonic() - last_heard >= heartbeat_s:
                last_heard = time.monotonic()
                doing = f"{tag or func}" if started else f"the {self.name} worker is importing its libraries"
                on_progress(f"... {doing} ({last_heard - t_call:.0f} s)")
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                ready = self._conn.poll(wait)
            except (EOFError, OSError):
                ready = False
            if ready:
                try:
                    kind, payload = self._conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    return self._crashed(func, tag)
                last_heard = time.monotonic()
                if kind == "started":
                    started = True
                    deadline = None if timeout is None else time.monotonic() + timeout
                    continue
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(payload)
                    continue
                if kind == "ok":
                    return payload
                raise _rebuild_error(payload)
            if self._proc.poll() is not None:
                return self._crashed(func, tag)
            if deadline is not None and time.monotonic() >= deadline:
                self._stop_overdue(func, tag, started, timeout)

    def _stop_overdue(self, func: str, tag: str, started: bool, timeout: float | None) -> None:
        """Kill a worker that outlived its startup or call limit and say which."""
        self.kill()
        if not started:
            raise errors.WorkerCrashed(
                f"the {self.name} worker did not start within {STARTUP_LIMIT_S:g} s "
                f"(before {tag or func}) and was stopped")
        raise errors.WorkerCrashed(
            f"{tag or func} did not finish within {timeout:g} s and was stopped"
        )

    def _crashed(self, func: str, tag: str) -> Any:
        assert self._proc is not None
        try:
            rc = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self._proc.returncode if self._proc.returncode is not None else -9
        tail = self.log_tail(3)
        what = tag or func
        msg = f"{what} crashed the {self.name} worker ({_signal_name(rc)})"
        if tail:
            msg += ": " + " | ".join(tail.splitlines())[-400:]
        self._cleanup()
        raise errors.WorkerCrashed(msg)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self._proc.kill()
            self._proc.wait()

    def _cleanup(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass
        self._log = None

    def close(self) -> None:
        if self.alive and self._conn is not None:
            try:
                self._conn.send(("exit",))
                self._proc.wait(timeout=5)  # type: ignore[union-attr]
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self._cleanup()
        self._proc = None


class WorkerPool:
    """The workers of one run: ``tf`` (TensorFlow, Keras, converters) and ``rt``
    (LiteRT and ONNX Runtime, no TensorFlow)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.tf = Worker("tensorflow", {**(env or {}), PRELOAD_ENV: "tensorflow,keras"})
        self.rt = Worker("runtime", {**(env or {}), PRELOAD_ENV: "ai_edge_litert.interpreter,onnxruntime"})

    def start(self) -> None:
        """Spawn both workers now; each imports its libraries while the parent goes on."""
        self.tf.start()
        self.rt.start()

    def close(self) -> None:
        self.tf.close()
        self.rt.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DEFAULT_POOL: WorkerPool | None = None


def default_pool() -> WorkerPool:
    """A process-wide pool, closed at exit; reused by every run in the same process."""
    global _DEFAULT_POOL
    if _DEFAULT_POOL is None:
        _DEFAULT_POOL = WorkerPool()
        atexit.register(_DEFAULT_POOL.close)
    return _DEFAULT_POOL


def _error_payload(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, OSError) and exc.errno is not None:
        # disk full, permissions, read-only filesystem: the user's environment, not a bug
        where = f" ({exc.filename})" if exc.filename else ""
        return {"edgekit": True, "type": "WriteFailure", "message": f"{exc.strerror}{where}", "traceback": ""}
    return {
        "edgekit": isinstance(exc, errors.EdgekitError),
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": traceback.format_exc(),
    }


def _rebuild_error(payload: dict[str, Any]) -> BaseException:
    if payload["edgekit"]:
        cls = getattr(errors, payload["type"], errors.EdgekitError)
        return cls(payload["message"])
    return errors.InternalError(
        f"{payload['type']}: {payload['message']}\n--- in worker ---\n{payload['traceback']}"
    )


def _resolve(func: str) -> Callable[..., Any]:
    module, _, attr = func.partition(":")
    return getattr(importlib.import_module(module), attr)


def _child_main(fd: int) -> None:
    global _CHILD_CONN
    import faulthandler

    faulthandler.enable()  # a native crash leaves its stack in the worker log
    # Libraries print to stdout (Keras export summaries, tf2onnx); the parent's terminal
    # and the protocol must not see that, so stdout goes to the log too.
    os.dup2(2, 1)
    conn = Connection(fd)
    _CHILD_CONN = conn
    # Run as ``python -m edgekit.worker`` this module is ``__main__``; task code imports
    # ``edgekit.worker`` as a second module object, whose ``report`` must see the connection.
    import edgekit.worker as _imported

    _imported._CHILD_CONN = conn
    crash_at, _, crash_how = os.environ.get(CRASH_ENV, "").partition("=")
    for module in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the call that needs it reports the missing dependency
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "exit":
            # Every result went back and every file was written atomically: nothing needs
            # TensorFlow's interpreter teardown, which costs over a second.
            conn.close()
            os._exit(0)
        _, func, args, kwargs, tag = msg
        conn.send(("started", None))
        try:
            if crash_at and tag == crash_at:
                if crash_how == "hang":
                    while True:
                        time.sleep(3600)
                os.kill(os.getpid(), signal.SIGSEGV)
            result = _resolve(func)(*args, **kwargs)
            conn.send(("ok", result))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            try:
                conn.send(("err", _error_payload(exc)))
            except Exception:  # noqa: BLE001 - unpicklable result; report it as text
                conn.send(("err", {"edgekit": False, "type": "InternalError",
                                   "message": repr(exc)[:2000], "traceback": ""}))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
