"""Which TFLite operators and operator versions a runtime can execute, measured by probing.

A probe is a minimal model (one float tensor, no operators) whose operator-code table holds
one ``(builtin op, version)`` pair. Interpreters resolve every entry of that table when they
load a model, so the load fails with "Didn't find op for builtin opcode ... version ..."
exactly when the runtime lacks that kernel version. Probing every op at versions
1..``MAX_VERSION`` gives the runtime's table; shipped tables live in ``compat_tables/``
and are regenerated with::

    python -m edgekit.runtimes.compat make-probes DIR          # any env with ai-edge-litert
    python -m edgekit.runtimes.compat run-probes DIR OUT.json  # the target runtime's env

``run-probes`` needs only numpy and the runtime (``ai_edge_litert`` or ``tflite_runtime``).
"""
from __future__ import annotations

import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

MAX_VERSION = 16
_SKIP = {"CUSTOM", "PLACEHOLDER_FOR_GREATER_OP_CODES", "DELEGATE"}


def probe_model(op_code: int, version: int) -> bytes:
    """A model with no operators and one operator code ``(op_code, version)``."""
    import flatbuffers

    from edgekit.runtimes.tflite_ops import schema

    s = schema()
    m = s.ModelT()
    m.version = 3
    t = s.TensorT()
    t.shape, t.type, t.name, t.buffer = [1, 1], s.TensorType.FLOAT32, b"x", 0
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = [t], [0], [0], [], b"main"
    m.subgraphs, m.buffers = [sg], [s.BufferT()]
    oc = s.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = op_code, min(op_code, 127), version
    m.operatorCodes = [oc]
    b = flatbuffers.Builder(256)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def builtin_ops() -> dict[str, int]:
    from edgekit.runtimes.tflite_ops import schema

    return {k: v for k, v in vars(schema().BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int) and k not in _SKIP}


def make_probes(out_dir: str) -> int:
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, code in builtin_ops().items():
        for v in range(1, MAX_VERSION + 1):
            (d / f"{name}.{v}.tflite").write_bytes(probe_model(code, v))
            n += 1
    return n


def _loads(interpreter_cls: Any, content: bytes) -> bool:
    try:
        interpreter_cls(model_content=content)
        return True
    except (ValueError, RuntimeError):
        return False


def runtime_identity() -> tuple[str, str, Any]:
    """(package, version, Interpreter class) of the LiteRT runtime importable here."""
    from importlib import metadata

    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

        return "ai-edge-litert", metadata.version("ai-edge-litert"), Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return "tflite-runtime", metadata.version("tflite-runtime"), Interpreter


def run_probes(probe_dir: str) -> dict[str, Any]:
    """Load every probe with the runtime installed here; return its table."""
    pkg, ver, cls = runtime_identity()
    pat = re.compile(r"^(?P<op>[A-Z0-9_]+)\.(?P<v>\d+)\.tflite$")
    ops: dict[str, list[int]] = {}
    for f in sorted(Path(probe_dir).iterdir()):
        m = pat.match(f.name)
        if m and _loads(cls, f.read_bytes()):
            ops.setdefault(m["op"], []).append(int(m["v"]))
    return _table(pkg, ver, ops)


def probe_installed(ops: Iterable[tuple[str, int]] | None = None) -> dict[str, Any]:
    """The installed runtime's table, probed in memory (only ``ops`` if given)."""
    pkg, ver, cls = runtime_identity()
    codes = builtin_ops()
    wanted = list(ops) if ops is not None else [(n, v) for n in codes for v in range(1, MAX_VERSION + 1)]
    table: dict[str, list[int]] = {}
    for name, v in wanted:
        if name in codes and _loads(cls, probe_model(codes[name], v)):
            table.setdefault(name, []).append(v)
    return _table(pkg, ver, table)


def _table(pkg: str, ver: str, ops: dict[str, list[int]]) -> dict[str, Any]:
    return {
        "runtime": pkg,
        "version": ver,
        "method": "load probes: one operator code per model, versions 1..%d (edgekit.runtimes.compat)" % MAX_VERSION,
        "ops": {k: sorted(v) for k, v in sorted(ops.items())},
    }


def shipped_tables() -> dict[str, dict[str, Any]]:
    """``{"tflite-runtime==2.14.0": table, ...}`` from the package's compat_tables/."""
    out = {}
    for f in resources.files("edgekit.runtimes").joinpath("compat_tables").iterdir():
        if f.name.endswith(".json"):
            t = json.loads(f.read_text())
            out[f"{t['runtime']}=={t['version']}"] = t
    return out


def find_table(spec: str) -> dict[str, Any]:
    """A table for ``spec``: ``installed``, ``NAME==VERSION`` (shipped; a prefix such as
    ``tflite-runtime==2.14`` matches 2.14.0), or a path to a JSON table."""
    from edgekit.errors import InputError

    if spec == "installed":
        return probe_installed()
    if spec.endswith(".json") and Path(spec).is_file():
        return json.loads(Path(spec).read_text())
    tables = shipped_tables()
    name, _, ver = spec.partition("==")
    for key, t in sorted(tables.items()):
        if t["runtime"] == name and (not ver or t["version"] == ver or t["version"].startswith(ver + ".")):
            return t
    raise InputError(f"no compatibility table for {spec!r}; known: {', '.join(sorted(tables))}, installed, or a .json path")


def incompatibilities(ops: Iterable[Any], table: dict[str, Any]) -> list[str]:
    """Why each operator of a model cannot run on the runtime of ``table`` (empty if all can)."""
    problems = []
    supported = table["ops"]
    for o in ops:
        if o.custom:
            problems.append(f"{o.name} (custom op) is not a builtin of {table['runtime']} {table['version']}")
            continue
        versions = supported.get(o.name)
        if not versions:
            problems.append(f"{o.name} is unknown to {table['runtime']} {table['version']}")
        elif o.version not in versions:
            problems.append(f"{o.name} version {o.version} (runtime has {min(versions)}..{max(versions)})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "make-probes":
        print(make_probes(argv[1]), "probe models written to", argv[1])
        return 0
    if len(argv) >= 3 and argv[0] == "run-probes":
        Path(argv[2]).write_text(json.dumps(run_probes(argv[1]), indent=1) + "\n")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
