"""Secrets never reach a span, a log or a table: what looks like one, and how it is hidden.

Two rules, one for names and one for text. An attribute *named* like a credential
(``http.request.header.authorization``, ``x-api-key``, ``openai.api_key``, a cookie, a
password, an access token) has its whole value replaced. Free text that may echo one
(an error message: providers quote the masked key in 401 answers; a URL with
``?key=...``) has the secret-shaped parts replaced.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "SECRET_LIKE", "is_secret_name", "redact_text"]

REDACTED = "[redacted]"

SECRET_LIKE = re.compile(r"\b(?:sk|pk|rk|key|api[_-]?key|bearer)[-_ :=]*[A-Za-z0-9*_\-.]{6,}", re.IGNORECASE)
"""A key-shaped token in free text (``sk-proj-...``, ``Bearer ...``, ``key=AIza...``)."""

# The last part of an attribute name (after the last dot), lower case, "-" read as "_".
_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "bearer",
        "credentials",
        "x_goog_api_key",
    }
)
_SECRET_PARTS = ("api_key", "apikey", "secret", "password", "access_token", "refresh_token", "auth_token")


def is_secret_name(name: str) -> bool:
    """Whether an attribute called ``name`` holds a credential, by its last dotted part."""
    last = name.rsplit(".", 1)[-1].lower().replace("-", "_")
    return last in _SECRET_NAMES or any(part in last for part in _SECRET_PARTS)


def redact_text(text: str) -> str:
    """``text`` with every key-shaped part replaced by ``[redacted]``."""
    return SECRET_LIKE.sub(REDACTED, text)
