"""``--help`` in the words a user types: ``CONFIG [KEY=VALUE]...``, not Typer's
``{CONFIG}`` and type labels such as ``<list[str]>`` or ``<path>`` beside each argument."""

from __future__ import annotations

import click
from typer.core import TyperCommand


def is_argument(param: click.Parameter) -> bool:
    return param.param_type_name == "argument"  # Typer's arguments are no click.Argument


def typed_form(argument: click.Parameter) -> str:
    """How the argument is written on the command line: ``CONFIG``, ``[KEY=VALUE]...``."""
    name = argument.metavar or (argument.name or "").upper()
    if argument.nargs != 1:
        return f"[{name}]..."
    return name if argument.required else f"[{name}]"


class PlainHelpCommand(TyperCommand):
    """A command whose usage line and argument list show each argument as it is typed
    (options show their ``metavar``, e.g. ``--workers K``)."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [typed_form(p) for p in self.get_params(ctx) if is_argument(p)]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if is_argument(param):
                arguments.append((typed_form(param), record[1]))
            else:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
