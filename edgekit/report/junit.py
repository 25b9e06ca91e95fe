"""``junit.xml`` of an ``edgekit check`` run: one test case per model x artifact x device, for
CI systems' test views (Jenkins, GitLab, GitHub Actions reporters)."""
from __future__ import annotations

import socket
from typing import Any
from xml.etree import ElementTree as ET

from edgekit.report.cases import numbers
from edgekit.results import CaseStatus

# The JUnit counter of each status that is not a pass, and its element under <testcase>.
_COUNTERS = {CaseStatus.FAIL: "failures", CaseStatus.ERROR: "errors", CaseStatus.SKIPPED: "skipped"}


def junit_xml(report: dict[str, Any]) -> bytes:
    """``testsuites > testsuite (one per model) > testcase (one per artifact x device)``."""
    stamp = report.get("created", "")[:19]
    host = socket.gethostname()
    root = ET.Element("testsuites", name="edgekit check")
    tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    by_model: dict[str, list[dict[str, Any]]] = {}
    for c in report["cases"]:
        by_model.setdefault(c["model"], []).append(c)
    minfo = {m["name"]: m for m in report["models"]}
    for sid, (model, cases) in enumerate(by_model.items()):
        counts = _counts(cases)
        suite = _suite(root, sid, model, counts, stamp, host)
        _properties(suite, minfo.get(model, {}), report.get("tools", {}))
        for c in cases:
            _testcase(suite, model, c)
        for k in tot:
            tot[k] += counts[k]
    for k, v in tot.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(v))
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def _counts(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """One suite's JUnit counters and its time."""
    counts: dict[str, Any] = {"tests": len(cases)}
    counts.update({name: sum(c["status"] == s for c in cases) for s, name in _COUNTERS.items()})
    counts["time"] = sum(c.get("time_s") or 0.0 for c in cases)
    return counts


def _suite(root: ET.Element, sid: int, model: str, counts: dict[str, Any], stamp: str, host: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=f"edgekit.{model}", tests=str(counts["tests"]),
                         failures=str(counts["failures"]), errors=str(counts["errors"]),
                         skipped=str(counts["skipped"]), time=f"{counts['time']:.3f}", timestamp=stamp,
                         hostname=host, id=str(sid), package="edgekit")


def _properties(suite: ET.Element, info: dict[str, Any], tools: dict[str, str]) -> None:
    props = ET.SubElement(suite, "properties")
    for k, v in (("source", info.get("source")), ("cached", info.get("cached")),
                 ("convert_elapsed_s", info.get("convert_elapsed_s")),
                 *((f"tool.{n}", ver) for n, ver in tools.items())):
        ET.SubElement(props, "property", name=str(k), value=str(v))


def _testcase(suite: ET.Element, model: str, c: dict[str, Any]) -> None:
    tc = ET.SubElement(suite, "testcase", classname=f"edgekit.{model}",
                       name=f"{c['artifact']}@{c['device']}", time=f"{c.get('time_s') or 0.0:.3f}")
    msg = "; ".join(c.get("messages", []))
    if c["status"] == CaseStatus.FAIL:
        el = ET.SubElement(tc, "failure", message=f"{c.get('kind')}: {msg}"[:2000], type=str(c.get("kind")))
        el.text = msg + "\n" + numbers(c)
    elif c["status"] == CaseStatus.ERROR:
        el = ET.SubElement(tc, "error", message=msg[:2000], type=str(c.get("kind")))
        el.text = msg
    elif c["status"] == CaseStatus.SKIPPED:
        ET.SubElement(tc, "skipped", message=msg[:2000])
    out = ET.SubElement(tc, "system-out")
    out.text = numbers(c) + ("\n" + "\n".join(c["notes"]) if c.get("notes") else "")
