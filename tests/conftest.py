"""Shared fixtures: one worker pool for the whole session, so TensorFlow is imported once
in the worker rather than once per test."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from edgekit.worker import WorkerPool

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def pool():
    # The workers import tests.helpers_tf, so they need the repository root on their path.
    root = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    with WorkerPool(env=env) as p:
        yield p


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory, pool):
    """Model files made by the worker: the guide's CNN as .keras, .h5 and a SavedModel,
    plus a two-input model. Built once per session."""
    d = tmp_path_factory.mktemp("models")
    return pool.tf.call("tests.helpers_tf:make_model_files", str(d), timeout=300)


def run_cli(args: list[str], cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
            timeout: float = 600):
    """Run the real ``edgekit`` entry point in a fresh process."""
    import subprocess

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", "from edgekit.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)
