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
