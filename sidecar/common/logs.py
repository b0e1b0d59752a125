"""structlog set-up shared by every rewind command: JSON lines in containers, key=value on a TTY."""

from __future__ import annotations

import logging
import sys

import structlog

from sidecar.common import cli_args

__all__ = ["LEVELS", "add_arguments", "configure", "configure_from"]

LEVELS = ("debug", "info", "warning", "error")
_FORMATS = {"auto": None, "json": True, "console": False}


def configure(level: str = "info", json: bool | None = None, stream=None) -> None:
    """Configure structlog once per process; ``json=None`` picks JSON unless stderr is a TTY."""
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def add_arguments(parser) -> None:
    """``--log-level`` and ``--log-format`` (and their ``REWIND_LOG_*`` variables): every command
    has the same two."""
    cli_args.add(parser, "--log-level", default="info", choices=list(LEVELS), help="log level")
    cli_args.add(parser, "--log-format", default="auto", choices=list(_FORMATS),
                 help="log format (auto: console on a terminal, JSON otherwise)")


def configure_from(log_level: str, log_format: str) -> None:
    """``configure`` from the values of the two flags ``add_arguments`` defines."""
    configure(log_level, json=_FORMATS[log_format])
