"""User-facing errors: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class EpigrafError(Exception):
    """A bad argument or input that the user can fix; the message names what was wrong."""


class ModelNotFoundError(EpigrafError):
    """A model spec that resolves to nothing (no zoo entry, folder, file or Hub repo)."""
