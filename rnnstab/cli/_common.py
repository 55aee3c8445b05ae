"""What the commands share: the typer ``app``, the stderr console, error and warning lines, progress bars,
run metadata, the --activation/--gamma options, the lists of names (--scheme, --only) and the ≥ 0 check of lyapunov
and inits."""

from __future__ import annotations

import importlib
import itertools
import platform
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.core import TyperCommand, TyperGroup, TyperOption

import rnnstab
from rnnstab import _io
from rnnstab.sweep import parse_values


def _plain_metavars(params: list[Any]) -> list[Any]:
    """``params`` without misleading type placeholders in --help: typer prints ``<bool>`` after an on/off flag, as if
    it took a value, and ``<list[str]>`` after a repeatable option (whose help says what it takes: VALUES)."""
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None:
            if param.is_flag:
                param.metavar = ""
            elif param.multiple:
                param.metavar = "VALUES"
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_metavars(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # click turns --out "" into Path("") = ".", indistinguishable afterwards from a deliberate --out .: an unset
        # shell variable ($OUT) would scatter the results into the working directory
        options = args[: args.index("--")] if "--" in args else args
        if "--out=" in options or any(a == "--out" and b == "" for a, b in itertools.pairwise(options)):
            raise _CLICK.UsageError("--out is empty: name a directory (--out . for the current one)", ctx=ctx)
        return super().parse_args(ctx, args)


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_metavars(super().get_params(ctx))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """As click's, but a usage error (``--steps abc``, a missing argument) is one ``error:`` line and exit code 2,
        like every other bad input, not typer's boxed panel under a usage block."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _CLICK.ClickException as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # the help is printed already (click ≥ 8.2)
                raise SystemExit(err.exit_code) from None
            where = getattr(err, "ctx", None)
            hint = f" (see {where.command_path} --help)" if isinstance(err, _CLICK.UsageError) and where else ""
            _print_line("error:", "red", err.format_message() + hint)
            raise SystemExit(err.exit_code) from None
        except typer.Abort:
            _print_line("error:", "red", "aborted")
            raise SystemExit(1) from None
        raise SystemExit(code if isinstance(code, int) else 0)


# click's exceptions, from wherever this typer takes click: the click package, or its own copy (typer ≥ 0.20)
_CLICK = importlib.import_module(typer.BadParameter.__module__)


def plain_help(application: typer.Typer) -> None:
    """Build every command registered on ``application`` so far as a :class:`_Command`."""
    for info in application.registered_commands:
        info.cls = _Command


app = typer.Typer(
    cls=_Group,
    help="rnnstab: will gradients in your recurrent network vanish or explode, why, and by how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

_Activation = Annotated[str, typer.Option(help=f"Activation σ, one of: {', '.join(rnnstab.activation_names())}.")]
_Gamma = Annotated[
    float | None,
    typer.Option(
        help="Use the scaled family σ_γ(x) = σ(c·x) with c chosen so that sup|σ_γ'| = γ "
        "(tanh with γ = 0.5 is tanh(0.5x)). Default: the activation's own γ = sup|σ'|."
    ),
]


@contextmanager
def _user_errors(ctx: typer.Context | None = None, aliases: Mapping[str, str] | None = None) -> Iterator[list[Path]]:
    """Turn a library error into one red line on stderr and exit code 2 (no traceback).

    A message that starts with the name of a library argument (``monitor_every must be ≥ 1``) is made to start with
    the command's option instead (``--monitor-every``): the command's own options by their parameter names, and
    ``aliases`` for library names that differ from them (``{"k": "--top"}``).

    Yields a list for ``_io.output_dir(..., created=)``: output directories the command made and left empty are
    removed again, so a refused or interrupted command leaves nothing behind."""
    created: list[Path] = []
    try:
        yield created
    except rnnstab.RnnstabError as err:
        _io.remove_empty(created)
        _print_line("error:", "red", _with_option_names(str(err), ctx, aliases or {}))
        raise typer.Exit(2) from None
    except OSError as err:  # the disk filled up, or the directory turned read-only, while results were written
        _io.remove_empty(created)
        _print_line("error:", "red", f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _io.remove_empty(created)
        raise


def _with_option_names(message: str, ctx: typer.Context | None, aliases: Mapping[str, str]) -> str:
    options = {p.name: p.opts[0] for p in ctx.command.params if p.opts[0].startswith("--")} if ctx else {}
    leading = re.match(r"[a-z_][a-z0-9_]*(?= must\b|:| is\b)", message)
    if leading is None:
        subject = next((name for words, name in _NAMED_IN_WORDS.items() if message.startswith(words)), None)
        flag = options.get(subject) if subject else None
        return f"{flag}: {message}" if flag else message
    flag = {**options, **aliases}.get(leading.group())
    return flag + message[leading.end() :] if flag else message


# library errors that name their argument in words ("unknown activation 'x'"), by the parameter they are about
_NAMED_IN_WORDS = {"unknown activation": "activation", "unknown init scheme": "init", "unknown scheme": "scheme"}


def _names(option: str, given: list[str] | None, valid: Sequence[str]) -> list[str] | None:
    """The names given to a repeatable, comma-separated option, each once, in the order first given; None when the
    option is not given. Read as sweep's and train's lists are: an empty list or item is refused (here also naming
    the valid names), since "a,,b" is more likely a typo than two names."""
    if not given:
        return None
    try:
        return list(dict.fromkeys(parse_values(option, given, kind="name")))
    except rnnstab.InvalidArgumentError as err:
        raise rnnstab.InvalidArgumentError(f"{err}; valid names: {', '.join(valid)}") from None


def _print_line(label: str, style: str, message: str) -> None:
    """One ``label message`` line on stderr; the message is printed as it is (a path or value the user typed may
    hold ``[bold]`` or ``:smile:``, which rich would otherwise read as markup or emoji)."""
    console.print(Text.assemble((label, style), " ", message), highlight=False, soft_wrap=True)


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print each library warning as one yellow ``warning:`` line on stderr, as soon as it is raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", rnnstab.RnnstabWarning)
        default = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, rnnstab.RnnstabWarning):
                _print_line("warning:", "yellow", str(message))
            else:
                default(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _exit_on_bound_violation(bound_holds: bool, where: str = "the report") -> None:
    """A computed ‖J_t‖₂ above δ^t beyond rounding is a bug in rnnstab: say so loudly and exit with code 3."""
    if not bound_holds:
        console.print(
            f"[bold red]BUG: a computed ‖J_t‖₂ exceeded δ^t beyond float rounding — a bug in rnnstab, see "
            f"{escape(where)}[/bold red]",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(3)


def _sweep_progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        disable=disable or not console.is_terminal,  # a bar in a log or pipe is noise (and a stray blank line)
        transient=True,  # an error then leaves one line, not a stopped bar
    )


def _train_progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]}  ‖∇L‖ {task.fields[grad]}"),
        console=console,
        disable=disable or not console.is_terminal,
        transient=True,
    )


def _progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable or not console.is_terminal,  # a bar in a log or pipe is noise (and a stray blank line)
        transient=True,  # an error then leaves one line, not a stopped bar
    )


def _metadata(**parameters: Any) -> dict[str, Any]:
    return {
        "parameters": parameters,
        "rnnstab": rnnstab.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
