"""``edgekit verify DIR``: recheck an output directory against its manifest (no TensorFlow)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.fsutil import STAGING_PREFIX, sha256_of


def verify(out_dir: str) -> dict[str, Any]:
    """Every artifact the manifest lists exists with its sha256; leftovers are reported."""
    d = Path(out_dir)
    if not d.is_dir():
        raise InputError(f"{out_dir} is not a directory")
    mf = d / "manifest.json"
    if not mf.is_file():
        raise InputError(f"{out_dir} has no manifest.json: not an edgekit output directory, or its last run did not finish")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{mf} is not valid JSON ({exc}): the directory was altered") from None
    problems, checked = [], 0
    for a in manifest.get("artifacts", []):
        if not a.get("path"):
            continue
        p = d / a["path"]
        checked += 1
        if not p.exists():
            problems.append(f"{a['path']}: missing")
        elif sha256_of(p) != a.get("sha256"):
            problems.append(f"{a['path']}: sha256 differs from the manifest")
        for name, digest in (a.get("meta") or {}).get("extra_files", {}).items():
            q = d / name
            if not q.exists() or sha256_of(q) != digest:
                problems.append(f"{name}: missing or sha256 differs from the manifest")
    leftovers = sorted(q.name for q in d.iterdir() if q.name.startswith(STAGING_PREFIX))
    return {"checked": checked, "problems": problems, "leftovers": leftovers, "ok": not problems}
