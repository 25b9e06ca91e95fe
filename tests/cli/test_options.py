"""One name per concept across commands, old names as hidden aliases, every option explained."""
from __future__ import annotations

import click
import pytest

from edgekit.cli import cli
from edgekit.cli.options import AliasedOption


def _commands(group: click.Group = cli, path: str = "edgekit"):
    for name, cmd in group.commands.items():
        yield f"{path} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{path} {name}")


def test_every_option_of_every_command_has_help():
    undocumented = []
    for path, cmd in _commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip():
                undocumented.append(f"{path} {p.opts[0]}")
    assert not undocumented, undocumented
    assert len(list(_commands())) >= 18


def test_help_text_shows_each_option_and_hides_the_aliases():
    for path, cmd in _commands():
        ctx = click.Context(cmd, info_name=path)
        text = cmd.get_help(ctx)
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.hidden:
                continue
            shown = [o for o in p.opts if not (isinstance(p, AliasedOption) and o in p.aliases)]
            assert shown[0] in text, (path, shown[0])
            for alias in getattr(p, "aliases", ()):
                assert f"{alias} " not in text and f"{alias}," not in text, (path, alias)


CONCEPTS = {"--inputs": "arrays fed to the model", "--out": "where results go", "--batch-size": "batch"}
OLD_NAMES = {"--input": "--inputs", "--output": "--out", "--batch": "--batch-size", "--data": "--inputs"}


def test_one_name_per_concept():
    for path, cmd in _commands():
        names = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        visible = {o for p in cmd.params if isinstance(p, click.Option)
                   for o in p.opts if o not in getattr(p, "aliases", ())}
        for old, new in OLD_NAMES.items():
            if old == "--data" and not path.endswith("predict"):
                continue  # --data is labelled data (train, evaluate): a concept of its own
            assert old not in visible, (path, old)
            if old in names:
                assert new in visible, (path, old, new)


@pytest.mark.parametrize("command, args, param, value", [
    ("bench", ["m.tflite", "--batch", "4"], "batch", 4),
    ("bench", ["m.tflite", "--batch-size", "4"], "batch", 4),
    ("bench", ["m.tflite", "--input", "x.npz"], "input_path", "x.npz"),
    ("run", ["m.tflite", "--input", "x.npz", "--output", "y.npz"], "output_path", "y.npz"),
    ("run", ["m.tflite", "--inputs", "x.npz", "--out", "y.npz"], "input_path", "x.npz"),
    ("predict", ["m.tflite", "--data", "x.npz", "--out", "y.npz"], "data", "x.npz"),
    ("predict", ["m.tflite", "-i", "x.npz", "-o", "y.npz"], "data", "x.npz"),
])
def test_old_names_still_parse(command, args, param, value):
    cmd = cli.commands[command]
    ctx = cmd.make_context(command, list(args))
    assert ctx.params[param] == value
