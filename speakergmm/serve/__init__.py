"""``speakergmm serve``: a speaker store as an HTTP service, with a web page.

A REST API (:mod:`.app`, FastAPI, OpenAPI at ``/openapi.json``) over one store: speakers
(list, show, remove), enrollment (multipart audio: new, append, replace), verification and
identification, the store's system and calibration. Every answer is the JSON the CLI's
``--json`` gives; errors are one line of JSON with the HTTP status. The page at ``/``
records from the microphone and does the same.

Security (:mod:`.tokens`, :mod:`.guard`, :mod:`.decode`): a token on every API call
(hashed at rest, scopes ``read`` and ``write``), a request-size limit enforced as the body
arrives, per-token rate limits, speaker ids checked before anything sees them, uploads
decoded in child processes bounded in time and memory, CORS off unless configured, and
loopback by default.

Needs the optional extra: ``pip install 'speakergmm[serve]'``.
"""

from __future__ import annotations

from .app import ServiceConfig, create_app
from .decode import BoundedDecoder, DecodeLimits
from .tokens import SCOPES, Token, TokenError, TokenStore, tokens_path

__all__ = ["ServiceConfig", "create_app", "BoundedDecoder", "DecodeLimits", "TokenStore",
           "Token", "TokenError", "SCOPES", "tokens_path"]
