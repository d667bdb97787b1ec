"""Reading the user's files: a missing, unreadable or undecodable file is one clear line."""

from __future__ import annotations

from pathlib import Path

from .diagnostics import InputError

__all__ = ["read_bytes", "read_text"]


def read_bytes(path: str | Path, what: str) -> bytes:
    """The file's bytes; `what` names the kind of file in errors ("policy file", ...)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), None, f"no such {what}") from None
    except IsADirectoryError:
        raise InputError(str(path), None, f"is a folder, not a {what}") from None
    except OSError as err:
        raise InputError(str(path), None, f"cannot be read ({(err.strerror or str(err)).lower()})") from None


def read_text(path: str | Path, what: str) -> str:
    """The file as UTF-8 text, without a byte-order mark."""
    data = read_bytes(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}", None, "is not valid UTF-8 text") from None
    return text[1:] if text.startswith("\ufeff") else text
