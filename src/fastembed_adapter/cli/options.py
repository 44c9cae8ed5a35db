"""Flags with environment fallbacks: each declared by :func:`add_flag`, its ``FEA_*`` variable read when it runs.

Shown in ``--help`` as ``[env: FEA_X]`` and parsed by the flag's own type, so a bad value is a usage
error of the command that reads it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..prepare.validate import QualityTarget

__all__ = ["add_common_arguments", "add_flag", "boolean", "fraction", "quality_target"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_TYPE_NAMES: dict[Any, str] = {int: "an integer", float: "a number", str: "a string"}


class _EnvText(str):
    """A flag's default taken from an environment variable; argparse parses it with the flag's type."""

    variable: str

    def __new__(cls, value: str, variable: str) -> _EnvText:
        text = super().__new__(cls, value)
        text.variable = variable
        return text


def boolean(text: str) -> bool:
    """``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case) as a bool; anything else is an error."""
    value = text.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def fraction(text: str) -> float:
    """A cosine or agreement threshold: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a value in (0, 1], e.g. 0.99") from None
    if not 0.0 < value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: cosines are in (0, 1], e.g. 0.99")
    return value


def quality_target(text: str) -> QualityTarget:
    """``--quality-target``: parts it does not name keep the default target's values."""
    from ..prepare.validate import QualityTarget

    try:
        return QualityTarget.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parsed_by(kind: Callable[[str], Any], choices: Sequence[Any] | None) -> Callable[[str], Any]:
    """``kind`` for argparse; a bad environment value is reported with its variable's name."""

    def parse(text: str) -> Any:
        if not isinstance(text, _EnvText):
            return kind(text)
        try:
            value = kind(text)
        except argparse.ArgumentTypeError as exc:
            reason = str(exc)
        except (TypeError, ValueError):
            reason = f"expected {_TYPE_NAMES.get(kind, getattr(kind, '__name__', 'a value'))}"
        else:
            if choices is None or value in choices:
                return value
            reason = f"choose from {', '.join(map(str, choices))}"
        raise argparse.ArgumentTypeError(f"environment variable {text.variable}={str(text)!r} is invalid: {reason}")

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse's "invalid <name> value" for flags
    return parse


class _Switch(argparse.Action):
    """A boolean flag ``--x`` with its ``--no-x``, so a command line can override ``FEA_X`` either way."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        default: Any = None,
        type: Callable[[str], Any] | None = None,
        required: bool = False,
        help: str | None = None,
    ) -> None:
        negated = [f"--no-{flag[2:]}" for flag in option_strings if flag.startswith("--")]
        flags = [*option_strings, *negated]
        super().__init__(flags, dest, nargs=0, default=default, type=type, required=required, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))

    def format_usage(self) -> str:
        """``--x | --no-x`` in the usage line."""
        return " | ".join(self.option_strings)


def add_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: str | tuple[str, ...],
    help: str,
    type: Callable[[str], Any] = str,
    default: Any = None,
    choices: Sequence[Any] | None = None,
    required: bool = False,
    switch: bool = False,
    metavar: str | None = None,
) -> None:
    """Declare ``flag`` with its environment fallback: the first of ``env`` set (and not empty) wins.

    The variable's text becomes the flag's default, which argparse parses with the flag's ``type``
    only when the flag is absent and only for the command being run; a bad value is a usage error
    (exit 2) naming the variable. ``switch`` makes a boolean ``--x`` / ``--no-x`` flag.
    """
    variables = (env,) if isinstance(env, str) else env
    found = next((name for name in variables if os.environ.get(name)), None)
    if found is not None:
        default = _EnvText(os.environ[found], found)
    kwargs: dict[str, Any] = {
        "default": default,
        "type": _parsed_by(boolean if switch else type, choices),
        "required": required and found is None,
        "help": f"{help} [env: {' or '.join(variables)}]",
    }
    if switch:
        parser.add_argument(flag, action=_Switch, **kwargs)
    else:
        parser.add_argument(flag, choices=choices, metavar=metavar, **kwargs)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every sub-command takes (``--debug``)."""
    add_flag(parser, "--debug", env="FEA_DEBUG", switch=True, default=False, help="show the traceback of an error")
