import os
import time

import pytest

from edgekit import errors
from edgekit.worker import Worker


@pytest.fixture()
def worker():
    w = Worker("test")
    yield w
    w.close()


def test_segfault_becomes_worker_crashed_naming_the_signal_and_worker_restarts(worker):
    pid1 = worker.call("os:getpid")
    with pytest.raises(errors.WorkerCrashed, match="SIGSEGV"):
        worker.call("ctypes:string_at", 0, tag="deref-null")  # reads address 0: a real segfault
    pid2 = worker.call("os:getpid")  # a fresh worker serves the next call
    assert pid1 != pid2 and pid2 != os.getpid()
    assert worker.starts == 2


def test_abort_is_reported(worker):
    with pytest.raises(errors.WorkerCrashed, match="SIGABRT"):
        worker.call("os:abort")


def test_hang_is_stopped_at_the_timeout(worker):
    t0 = time.monotonic()
    with pytest.raises(errors.WorkerCrashed, match="did not finish within 0.5 s"):
        worker.call("time:sleep", 30, timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert worker.call("operator:add", 2, 3) == 5


def test_edgekit_errors_keep_their_class_and_bugs_become_internal_errors(worker):
    with pytest.raises(errors.InputError, match="NAME=D1"):
        worker.call("edgekit.feeds:parse_shapes", ["bad"])
    with pytest.raises(errors.InternalError, match="ZeroDivisionError"):
        worker.call("operator:truediv", 1, 0)


def test_worker_does_not_import_tensorflow_unless_asked(worker):
    worker.call("edgekit.runtime:_tflite_interpreter")
    assert worker.call("edgekit.tests_support:imported", "tensorflow") is False


def test_a_slow_worker_start_is_not_counted_against_the_step_timeout():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    w = Worker("slow-start", {"EDGEKIT_PRELOAD": "tests.fixtures.slow_import", "PYTHONPATH": root,
                              "EDGEKIT_TEST_IMPORT_DELAY": "3"})
    try:
        t0 = time.monotonic()
        assert w.call("operator:add", 2, 3, timeout=1.0) == 5
        assert time.monotonic() - t0 >= 3  # the import really ran before the call
        with pytest.raises(errors.WorkerCrashed, match="did not finish within 1 s"):
            w.call("time:sleep", 30, timeout=1.0)
    finally:
        w.close()
