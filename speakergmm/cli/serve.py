"""``speakergmm serve``: a speaker store as an HTTP service (:mod:`speakergmm.serve`), and
``serve token``: its API tokens."""

from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path

import click

from .app import main, store_option

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _store_path(store: Path | None) -> Path:
    from ..store import default_store_path

    return Path(store) if store is not None else default_store_path()


def _loopback(host: str) -> bool:
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.group("serve", invoke_without_command=True)
@store_option
@click.option("--host", default="127.0.0.1",
              help="Address to listen on. Anything but loopback puts the service on the "
                   "network: put it behind a TLS reverse proxy (README, 'Serving').")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=1,
              help="Worker processes (one per core): they share the store safely.")
@click.option("--max-bytes", type=click.IntRange(min=1024), default=25 * 2**20,
              help="Largest request, refused (413) before it is read whole.")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=120.0,
              help="Longest recording, read from its header before it is decoded.")
@click.option("--decode-timeout", type=click.FloatRange(min=0.5), default=20.0,
              help="Seconds a recording may take to decode before its decoder is killed.")
@click.option("--decode-memory", type=click.IntRange(min=256), default=1024,
              help="Memory limit of a decoding process, MiB.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=120.0,
              help="Requests a minute per token, all workers together (429 beyond).")
@click.option("--burst", type=click.IntRange(min=1), default=30,
              help="Requests a token may make at once before --rate applies.")
@click.option("--cors-origin", "cors", multiple=True, metavar="URL",
              help="An origin whose pages may call the API (repeatable) [default: none].")
@click.option("--no-auth", is_flag=True,
              help="Serve without tokens: only on a loopback --host, for trying it alone.")
@click.pass_context
def serve_cmd(ctx, store, host, port, workers, max_bytes, max_seconds, decode_timeout,
              decode_memory, rate, burst, cors, no_auth) -> None:
    """Serve the speaker store over HTTP: a REST API (OpenAPI at /openapi.json) and a web
    page at / that enrolls, verifies and identifies from the microphone.

    Every API call needs a token ('speakergmm serve token create --scope write'). Needs
    the optional extra: pip install 'speakergmm[serve]'."""
    ctx.obj["store_path"] = store
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import SpeakerGMMError
    from ..serve import ServiceConfig, TokenStore, tokens_path
    from ..serve.decode import DecodeLimits

    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec(
            "fastapi") is None:
        raise SpeakerGMMError("speakergmm serve needs the optional extra: pip install "
                              "'speakergmm[serve]' (FastAPI, uvicorn)")
    path = _store_path(store).resolve()
    if no_auth and not _loopback(host):
        raise click.UsageError(f"--no-auth only on a loopback --host, not {host}: anyone on "
                               "the network could enroll and remove speakers")
    if not no_auth and not TokenStore(tokens_path(path)).list():
        raise SpeakerGMMError(f"no API token for {path} yet: create one with 'speakergmm serve "
                              f"--store {path} token create --scope write' (or --no-auth on "
                              "loopback)")
    config = ServiceConfig(path, max_bytes=max_bytes, rate=rate, burst=burst,
                           auth=not no_auth, cors=tuple(cors),
                           limits=DecodeLimits(max_seconds, decode_timeout, decode_memory))
    run(config, host=host, port=port, workers=workers)


def run(config, *, host: str, port: int, workers: int) -> None:
    """Run the service of ``config`` with uvicorn until interrupted."""
    import os

    import uvicorn

    from ..serve.app import CONFIG_VARIABLE

    os.environ[CONFIG_VARIABLE] = config.to_json()  # (what each worker builds its app from)
    click.echo(f"serving {config.store} at http://{'[' + host + ']' if ':' in host else host}"
               f":{port}/ ({workers} worker(s)); Ctrl-C stops", err=True)
    uvicorn.run("speakergmm.serve.app:app_from_environment", factory=True, host=host,
                port=port, workers=workers, log_level="warning", server_header=False,
                proxy_headers=False, timeout_graceful_shutdown=10)


@serve_cmd.group("token")
def token_cmd() -> None:
    """Create, list and revoke the service's API tokens (kept hashed beside the store)."""


def _tokens(store):
    from ..serve import TokenStore, tokens_path

    group = click.get_current_context().find_root().obj.get("store_path")
    return TokenStore(tokens_path(_store_path(store if store is not None else group)))


@token_cmd.command("create")
@click.option("--scope", type=click.Choice(["read", "write"]), required=True,
              help="read: list, show, verify, identify; write: also enroll and remove.")
@click.option("--label", default="", help="What the token is for (shown by 'token list').")
@store_option
def token_create(scope, label, store) -> None:
    """Create a token and print it: it is shown this once, and kept only as a hash."""
    tokens = _tokens(store)
    secret, token = tokens.create(scope, label)
    click.echo(secret)
    click.echo(f"token {token.id} ({scope}) for the store's service; keep it secret: it is "
               f"not shown again ({tokens.path})", err=True)


@token_cmd.command("list")
@store_option
def token_list(store) -> None:
    """List the tokens (ids, scopes, labels; never the secrets)."""
    for token in _tokens(store).list():
        click.echo(f"{token.id}  {token.scope:5s}  {token.created}  {token.label}")


@token_cmd.command("revoke")
@click.argument("token_id")
@store_option
def token_revoke(token_id, store) -> None:
    """Revoke a token by its id: refused from the next request on, in every worker."""
    gone = _tokens(store).revoke(token_id)
    click.echo(f"revoked {gone.id} ({gone.scope})")
