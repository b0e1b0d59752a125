"""Argument helpers shared by rewind's commands: every flag also reads ``REWIND_<FLAG>``, sizes
take binary suffixes, durations take s/m/h. Bad values fail before any work starts."""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from collections.abc import Mapping
from enum import IntEnum

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def env_name(flag: str) -> str:
    """``--max-body`` -> ``REWIND_MAX_BODY``."""
    return "REWIND_" + flag.lstrip("-").replace("-", "_").upper()


def add(parser: argparse.ArgumentParser, flag: str, *, help: str, **kw) -> None:
    """``parser.add_argument`` whose default comes from the flag's environment variable."""
    env = env_name(flag)
    if env in os.environ:
        kw["default"] = os.environ[env]
        kw.pop("required", None)
    shown = kw.get("default")
    suffix = f" [env {env}" + (f"; default {shown}" if shown not in (None, "", False) else "") + "]"
    parser.add_argument(flag, help=help + suffix, **kw)


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def boolean(text: str | bool) -> bool:
    """``true``/``yes``/``on``/``1`` -> True, ``false``/``no``/``off``/``0``/empty -> False, in any
    case; anything else fails. The one reading of a yes/no flag or ``REWIND_*`` variable."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"not a yes/no value: {text!r} (use true or false)")


def size(text: str) -> int:
    """``1048576``, ``64KiB``, ``1MiB``, ``10m`` -> bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use bytes or 64KiB, 1MiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) * _UNITS[unit]


def duration(text: str) -> float:
    """``30``, ``30s``, ``5m``, ``1h``, ``500ms`` -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 30s, 5m, 1h)")
    return float(m.group(1)) * _SECONDS[m.group(2)]


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def port_list(text: str) -> tuple[int, ...]:
    """``8080`` or ``8080,8443`` -> (8080, 8443); each 1..65535."""
    ports = tuple(port(p) for p in str(text).replace(" ", ",").split(",") if p)
    if not ports or min(ports) == 0:
        raise argparse.ArgumentTypeError(f"ports must be 1..65535, got {text!r}")
    return ports


def pid_list(text: str) -> set[int]:
    """``123,456`` -> {123, 456}."""
    try:
        pids = {int(p) for p in str(text).replace(" ", ",").split(",") if p}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of process ids: {text!r}") from None
    if not pids or min(pids) <= 0:
        raise argparse.ArgumentTypeError(f"not a list of process ids: {text!r}")
    return pids


def exit_codes_help(texts: Mapping[IntEnum, str], *, title: str = "exit codes") -> str:
    """The exit-code paragraph of a command's ``--help``, made from its enum in
    ``sidecar.contract.exit_codes``: ``texts`` gives each code's meaning and must name every
    member of each enum its keys come from (a code added to an enum fails until it is described)."""
    for enum in {type(code) for code in texts}:
        missing = [m.name for m in enum if m not in texts]
        if missing:
            raise ValueError(f"{enum.__name__}: no help text for {', '.join(missing)}")
    body = "; ".join(f"{int(code)} {text}" for code, text in sorted(texts.items()))
    return textwrap.fill(f"{title}: {body}", width=96, break_on_hyphens=False) + "\n"
