"""``edgekit devices``: the device profiles, whether each is available here and what to run
where it is not; ``edgekit devices setup arm64`` builds the emulated ARM64 environment."""
from __future__ import annotations

import json
import sys

import click


@click.group("devices", invoke_without_command=True)
@click.option("--profiles", "extra", multiple=True, metavar="PATH",
              help="More profile files or folders (also: $EDGEKIT_DEVICE_PROFILES).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def devices_group(ctx: click.Context, extra: tuple[str, ...], as_json: bool) -> None:
    """List the devices artifacts can be checked on, with their availability."""
    if ctx.invoked_subcommand is not None:
        return
    from edgekit.devices import availability, load_profiles

    rows = []
    profs = sorted(load_profiles(list(extra)).values(), key=lambda p: (p.kind != "host", p.kind == "cuda", p.name))
    for p in profs:
        ok, why = availability(p)
        rows.append({**p.to_json(), "description": p.description, "available": ok, "detail": why})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "available  " if r["available"] else "unavailable"
        click.echo(f"{r['name'].ljust(w)}  {mark}  {r['description']}")
        click.echo(f"{''.ljust(w)}  {'':11}  {r['detail']}")


@devices_group.command("setup")
@click.argument("what", type=click.Choice(["arm64"]))
@click.option("--force", is_flag=True, help="Rebuild even if a complete environment exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def setup_cmd(what: str, force: bool, quiet: bool) -> None:
    """Build the emulated ARM64 environment once (qemu 10 from Debian, an arm64 Python
    userland, aarch64 wheels at the host's versions), in the user's cache directory.
    Needs apt-get and mmdebstrap (root installs it) and network access to Debian and PyPI."""
    from edgekit.cli import _progress
    from edgekit.devices.arm import setup

    meta = setup(say=_progress(quiet), force=force)
    state = "already set up" if meta["reused"] else f"built in {meta['setup_s']:.0f} s"
    click.echo(f"arm64: {state}: {meta['path']} ({meta['disk_bytes'] / 1e6:.0f} MB, qemu {meta['qemu_version']}, "
               + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ")")
    for cpu, detail in meta.get("self_test", {}).items():
        ok = cpu not in meta.get("refused_cpus", {})
        click.echo(f"  self-test {cpu}: {'ok' if ok else 'REFUSED'}: {detail}")
    sys.exit(0 if not meta.get("refused_cpus") else 1)
