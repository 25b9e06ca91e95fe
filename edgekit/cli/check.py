"""``edgekit check`` (conversion checks for CI) and ``edgekit report merge`` (joins shards)."""
from __future__ import annotations

import sys
from pathlib import Path

import click


def _report_options(cmd: click.Command) -> click.Command:
    for opt in reversed([
        click.option("--json", "json_path", default=None, metavar="FILE", help="JSON report (default: OUT/report.json)."),
        click.option("--junit", default=None, metavar="FILE", help="JUnit XML (default: OUT/junit.xml)."),
        click.option("--markdown", "md", default=None, metavar="FILE",
                     help="Markdown summary (default: OUT/summary.md; also appended to $GITHUB_STEP_SUMMARY)."),
        click.option("--html", "html_path", default=None, metavar="FILE",
                     help="Self-contained HTML report with plots (default: OUT/report.html)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress lines."),
    ]):
        cmd = opt(cmd)
    return cmd


@click.command("check")
@click.argument("config", required=False, metavar="[CONFIG]")
@click.option("--out", "-o", "out_dir", default=None, metavar="DIR",
              help="Where artifacts and reports go (default: [check] out in the config, else edgekit-check/).")
@click.option("--update-golden", is_flag=True,
              help="Store each model's check inputs and outputs as its golden set (golden_dir in the config).")
@click.option("--baseline", default=None, metavar="REPORT.json",
              help="A previous report.json: fail on size or latency regressions beyond [check.regression].")
@click.option("--shard", default=None, metavar="K/N", help="Run only the K-th of N deterministic slices of the models.")
@click.option("--no-cache", is_flag=True, help="Reconvert every model even if nothing changed.")
@click.option("--only", default=None, metavar="NAMES", help="Comma-separated model names to run.")
@click.option("--devices", default=None, metavar="LIST",
              help="Devices for every model instead of the configuration's (e.g. x86-cpu,arm64-cortex-a76, "
                   "or all-available).")
@click.option("--unsafe", is_flag=True,
              help="Let the configuration's unsafe = true and custom_objects take effect (a file alone cannot; "
                   "EDGEKIT_ALLOW_UNSAFE=1 does the same).")
@click.option("--force", is_flag=True, help="Write into a non-empty output directory that edgekit did not make.")
@_report_options
def check_cmd(config: str | None, out_dir: str | None, update_golden: bool, baseline: str | None, shard: str | None,
              no_cache: bool, only: str | None, devices: str | None, unsafe: bool, force: bool, json_path: str | None,
              junit: str | None, md: str | None, html_path: str | None, quiet: bool) -> None:
    """Run every model of CONFIG (edgekit.toml, or pyproject.toml with [tool.edgekit];
    default: found from the current directory up) and judge every artifact on every
    device against tolerances, budgets, golden outputs and a baseline.

    \b
    Exit codes: 0 every case passed, 1 a conversion or runtime failed,
                2 a bad configuration or unusable input, 3 a tolerance, budget,
                golden or regression check failed.
    """
    from edgekit.check.config import config_path, load_config, unsafe_allowed
    from edgekit.report.cases import console_table
    from edgekit.report.write import write_reports
    from edgekit.check.runner import CheckRun, parse_shard
    from edgekit.cli import _needs_converter, _progress

    _needs_converter("check")
    shard_kn = parse_shard(shard)  # option errors before the file's
    path = config_path(config)
    if not (config and Path(config).is_file()):
        click.echo(f"edgekit: configuration {path}", err=True)  # found by a search: say which
    cfg = load_config(path, allow_unsafe=unsafe_allowed(unsafe))
    if devices:
        from edgekit.devices import resolve

        names = [p.name for p in resolve(devices)]
        for m in cfg.models:
            m.devices = names
    run = CheckRun(cfg, out=Path(out_dir) if out_dir else None, update_golden=update_golden, baseline=baseline,
                   shard=shard_kn, use_cache=not no_cache, force=force,
                   only=[s.strip() for s in only.split(",") if s.strip()] if only else None, say=_progress(quiet))
    say = run.say
    say(f"{cfg.path}: {len(run.selected)} of {len(cfg.models)} models" + (f" (shard {shard})" if shard else ""))
    report = run.run()
    paths = write_reports(report, run.out, json_path, junit, md, html_path)
    click.echo(console_table(report))
    click.echo("reports: " + ", ".join(str(p) for p in paths.values()))
    sys.exit(report["exit_code"])


@click.group("report")
def report_group() -> None:
    """Work with edgekit check reports."""


@report_group.command("merge")
@click.argument("reports", nargs=-1, required=True, metavar="REPORT.json...")
@click.option("--out", "-o", "out_dir", default="edgekit-check-merged", show_default=True, metavar="DIR",
              help="Where the merged reports go.")
@_report_options
def merge_cmd(reports: tuple[str, ...], out_dir: str, json_path: str | None, junit: str | None, md: str | None,
              html_path: str | None, quiet: bool) -> None:
    """Join the report.json of each shard of one `edgekit check --shard K/N` run into one
    report and one exit code (models no shard covered make it fail)."""
    from edgekit.report.cases import console_table
    from edgekit.report.write import write_reports
    from edgekit.check.runner import merge_reports

    merged = merge_reports(list(reports))
    paths = write_reports(merged, Path(out_dir), json_path, junit, md, html_path)
    click.echo(console_table(merged))
    click.echo("reports: " + ", ".join(str(p) for p in paths.values()))
    sys.exit(merged["exit_code"])
