"""What goes wrong with --dask, said to the user: a usage error (exit 2)."""

from __future__ import annotations


class DaskError(Exception):
    """--dask cannot be used: Dask missing, a bad address, an unreachable
    scheduler, or workers that cannot run fragments. A usage error (exit 2)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, for a result's message."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
