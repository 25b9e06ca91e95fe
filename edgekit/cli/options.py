"""Options shared by commands, and old option names kept working but out of the help.

One name per concept across commands: ``--inputs/-i`` (arrays fed to a model), ``--data``
(labelled data), ``--out/-o`` (where results go), ``--batch-size``. Names used before are
hidden aliases so scripts written for them keep running.
"""
from __future__ import annotations

from typing import Any

import click


class AliasedOption(click.Option):
    """A click option whose ``aliases`` parse like its other names but are not shown."""

    def __init__(self, *args: Any, aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = tuple(aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def aliased(*names: str, aliases: tuple[str, ...], **kwargs: Any) -> Any:
    """``click.option`` with hidden ``aliases`` (old names) appended to ``names``."""
    return click.option(*names, *aliases, cls=AliasedOption, aliases=aliases, **kwargs)


UNSAFE_HELP = "Allow models whose loading runs stored code (Lambda layers)."

# How a model's check inputs are made and its artifacts judged: the same options, with the
# same names and help, on every command that checks artifacts against a model.
_CHECK_OPTIONS = [
    click.option("--inputs", "-i", default=None, metavar="FILE",
                 help="Inputs to check with: .npz with one array per input name (or .npy for one input). "
                      "Default: seeded random inputs valid for the model."),
    click.option("--batch-size", default=2, show_default=True, type=int, help="Batch size of random inputs."),
    click.option("--seed", default=0, show_default=True, type=int, help="Seed of random inputs."),
    click.option("--shape", "shapes", multiple=True, metavar="NAME=D1,D2",
                 help="Dimensions (after the batch) of an input whose shape is not fixed; repeatable."),
    click.option("--atol", multiple=True, metavar="[OUTPUT=]X",
                 help="Absolute tolerance for every output, or for one named output; repeatable."),
    click.option("--rtol", multiple=True, metavar="[OUTPUT=]X",
                 help="Tolerance relative to the output's magnitude (max|ref|); repeatable."),
    click.option("--no-truth", "no_truth", is_flag=True,
                 help="Do not judge float artifacts against a float64 twin of the model (fixed bound only)."),
    click.option("--allow-nonfinite-inputs", is_flag=True, help="Accept --inputs that contain NaN or inf."),
    click.option("--unsafe", is_flag=True, help=UNSAFE_HELP),
    click.option("--custom-objects", default=None, metavar="MODULE.py",
                 help="Python module defining the model's custom layers (imported before loading; a dict "
                      "CUSTOM_OBJECTS in it is passed to Keras). The only way edgekit runs code for a model file."),
    click.option("--timeout", default=600.0, show_default=True, type=float, metavar="SECONDS",
                 help="Limit for each conversion and each runtime check."),
]


def check_options(f: Any) -> Any:
    """Add the check-input and tolerance options (``convert``, ``compare``)."""
    for opt in reversed(_CHECK_OPTIONS):
        f = opt(f)
    return f
