"""API tokens of a service: created once, shown once, kept only as hashes.

A store's tokens live beside it, in ``STORE.tokens.json`` (mode 0600, written atomically):
each token's id, scope, label, creation time and the SHA-256 of its secret. A token is
``sgm_<id>_<secret>`` with 256 random bits of secret, so a plain hash is as strong as a slow
one here (nobody can guess such a secret to test against the hash), and the id finds the
record without comparing against every hash. Scopes: ``read`` (list, show, verify,
identify, the store's system and calibration) and ``write`` (everything, enrolling and
removing too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .._io import atomic_write
from ..errors import SpeakerGMMError

__all__ = ["Token", "TokenStore", "TokenError", "SCOPES", "tokens_path"]

#: Scopes, each granting what the ones before it grant.
SCOPES = ("read", "write")
_TOKEN = re.compile(r"sgm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_FORMAT = "speakergmm-tokens"


class TokenError(SpeakerGMMError):
    """A token file that cannot be read, or a token that does not exist."""


@dataclass(frozen=True)
class Token:
    """What is kept of a token (never its secret)."""

    id: str
    scope: str
    label: str
    created: str
    sha256: str

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


def tokens_path(store: str | os.PathLike) -> Path:
    """Where the tokens of ``store`` are kept."""
    store = Path(store)
    return store.with_name(store.name + ".tokens.json")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The tokens of one store's service (:func:`tokens_path`).

    The file is read again when it changes, so tokens created or revoked while the
    service runs take effect at once, in every worker.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._cache: tuple[tuple, dict[str, Token]] | None = None

    def _read(self) -> dict[str, Token]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != _FORMAT:
                raise ValueError(f"not a {_FORMAT} file")  # (caught below)
            tokens = {t["id"]: Token(**t) for t in data["tokens"]}
            if any(t.scope not in SCOPES for t in tokens.values()):
                raise ValueError("unknown scope")  # (caught below)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(f"{self.path}: unreadable token file ({exc}); remove it and "
                             "create the tokens again") from None
        self._cache = (key, tokens)
        return tokens

    def _write(self, tokens: dict[str, Token]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, fsync=True, private=True) as fh:
            json.dump({"format": _FORMAT, "tokens": [asdict(t) for t in tokens.values()]},
                      fh, indent=1)

    def create(self, scope: str, label: str = "") -> tuple[str, Token]:
        """A new token: (the token, to show once; its record)."""
        if scope not in SCOPES:
            raise TokenError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
        tokens = dict(self._read())
        ident = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = Token(ident, scope, label, datetime.now(timezone.utc).isoformat(
            timespec="seconds"), _digest(secret))
        tokens[ident] = token
        self._write(tokens)
        return f"sgm_{ident}_{secret}", token

    def revoke(self, ident: str) -> Token:
        tokens = dict(self._read())
        if ident not in tokens:
            raise TokenError(f"no token {ident!r} in {self.path} ('speakergmm serve token "
                             "list' shows them)")
        gone = tokens.pop(ident)
        self._write(tokens)
        return gone

    def list(self) -> list[Token]:
        return sorted(self._read().values(), key=lambda t: t.created)

    def check(self, presented: str | None) -> Token | None:
        """The token ``presented`` is, or None if it is none of these."""
        match = _TOKEN.fullmatch(presented or "")
        if match is None:
            return None
        token = self._read().get(match.group(1))
        if token is None or not hmac.compare_digest(token.sha256, _digest(match.group(2))):
            return None
        return token
