"""Credentials in index URLs (https://user:token@host/simple): found, split off, and redacted.

They travel to a build only as a BuildKit secret, never as a build arg or in a Dockerfile, and
whatever envkit prints or logs passes through redact().
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://USERINFO@ — the user info runs to the last @ before the host's path, query or end.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>@]*(?:@[^/?#\s'\"<>@]*)*@"
)


def redact(text: str) -> str:
    """`text` with the user info of every URL in it replaced by *** (https://***@host/...)."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def redact_data(data):
    """`data` (JSON-like: dicts, lists, tuples, strings) with every string redacted; tuples
    become lists, as JSON writes them."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(value) for value in data]
    return data


def has_credentials(url: str | None) -> bool:
    """Whether a URL carries a user name or password."""
    return bool(url) and redact(url) != url


def without_credentials(url: str) -> str:
    """The URL with its user info removed (what may appear in a Dockerfile or an image)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
