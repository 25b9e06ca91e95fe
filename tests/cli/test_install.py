"""The light install: help and device commands import nothing of the converter, and the
converter's absence is one line naming the extra."""
from __future__ import annotations

import subprocess
import sys

from edgekit.extras import CONVERT_MODULES, missing_modules

HELP_SCRIPT = r"""
import sys
from edgekit.cli import cli, main

def walk(group, path):
    for name, cmd in group.commands.items():
        yield [*path, name]
        if hasattr(cmd, "commands"):
            yield from walk(cmd, [*path, name])

argvs = [[]] + list(walk(cli, []))
for argv in argvs:
    try:
        main([*argv, "--help"])
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
heavy = [m for m in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "sklearn", "matplotlib",
                     "h5py", "ai_edge_litert") if m in sys.modules]
print(f"COMMANDS={len(argvs)} HEAVY=" + ",".join(heavy))
"""


def test_every_help_text_imports_no_converter_or_runtime():
    proc = subprocess.run([sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith("HEAVY="), last
    assert int(last.split()[0].split("=")[1]) >= 18  # top level, every command and sub-command


def test_missing_converter_modules_are_found_without_importing_them():
    assert missing_modules(("json", "edgekit_no_such_module")) == ["edgekit_no_such_module"]
    # this environment has the converter: nothing reported missing, and nothing imported
    before = set(sys.modules)
    assert missing_modules() == []
    assert not {m for m in CONVERT_MODULES if m in sys.modules} - before
