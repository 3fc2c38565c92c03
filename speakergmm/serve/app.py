"""The HTTP API over a speaker store (FastAPI): every route is a few lines around one
:class:`~speakergmm.recognizer.Recognizer` or store call, and answers with the JSON the
CLI's ``--json`` gives; errors are ``{"error": one line, "status": code}``."""


import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated

from ..constants import IDENTIFY_PRIOR
from ..errors import ParameterError, SpeakerGMMError
from ..store import (
    BadSpeakerId,
    SpeakerExists,
    SpeakerStore,
    StoreBusy,
    StoreError,
    UnknownSpeaker,
    check_speaker_id,
)
from .decode import BoundedDecoder, DecodeLimits
from .guard import BodyLimit, Gate, RateLimiter, error_body
from .tokens import TokenStore, tokens_path

__all__ = ["ServiceConfig", "create_app", "app_from_environment", "CONFIG_VARIABLE"]

#: The environment variable that carries a :class:`ServiceConfig` (JSON) to worker processes.
CONFIG_VARIABLE = "SPEAKERGMM_SERVE_CONFIG"


@dataclass(frozen=True)
class ServiceConfig:
    """How a service runs.

    Attributes
    ----------
    store : path
        The speaker store served; its tokens are in :func:`~.tokens.tokens_path`.
    max_bytes : int
        Largest request body, refused with 413 before it is read whole.
    limits : DecodeLimits
        Seconds of audio per recording, and the time and memory to decode one.
    rate : float
        Requests a minute per token, all worker processes together.
    burst : int
        Requests a token may make at once before the rate applies.
    auth : bool
        Require a token on every API call (the page's own files excepted).
    cors : tuple of str
        Origins whose pages may call the API from a browser; none by default.
    decoders : int
        Decoding processes per worker.
    """

    store: Path
    max_bytes: int = 25 * 2**20
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    rate: float = 120.0
    burst: int = 30
    auth: bool = True
    cors: tuple[str, ...] = ()
    decoders: int = 1

    def __post_init__(self):
        object.__setattr__(self, "store", Path(self.store))
        for name in ("max_bytes", "burst", "decoders"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ParameterError(f"service {name} must be a positive integer, not "
                                     f"{getattr(self, name)!r}")
        if not self.rate > 0:
            raise ParameterError(f"service rate must be positive, not {self.rate!r}")

    def to_json(self) -> str:
        out = dataclasses.asdict(self)
        out["store"] = str(self.store)
        return json.dumps(out)

    @classmethod
    def from_json(cls, text: str) -> "ServiceConfig":
        data = json.loads(text)
        data["limits"] = DecodeLimits(**data["limits"])
        data["cors"] = tuple(data["cors"])
        return cls(**data)


class ServiceError(Exception):
    """A refusal of the service's own (not the library's): its HTTP status and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _status(exc: SpeakerGMMError) -> int:
    """The HTTP status of a library error."""
    if isinstance(exc, UnknownSpeaker):
        return 404
    if isinstance(exc, SpeakerExists):
        return 409
    if isinstance(exc, BadSpeakerId):
        return 400
    if isinstance(exc, StoreBusy):
        return 503
    if isinstance(exc, StoreError):
        # another system, a damaged record: the request was fine, the store refuses it
        return 409
    return 400  # bad audio, no speech, bad parameters


class _Engine:
    """What a worker process keeps between requests: the systems loaded (one per store
    binding), the decoder, one recognition at a time (the service's workers are its
    parallelism: one per core)."""

    def __init__(self, config: ServiceConfig):
        self.decoder = BoundedDecoder(config.limits, workers=config.decoders)
        self.compute = threading.Lock()
        self._systems: dict[str, object] = {}
        self._lock = threading.Lock()

    def recognizer(self, store: SpeakerStore):
        from ..recognizer import Recognizer
        from ..system import load_system

        bound = store.system() if store.path.exists() else None
        if bound is None:  # a new store (it takes its band's system) or a bare UBM's
            return Recognizer(None, store)
        spec = bound.get("path") or bound.get("name")
        with self._lock:
            if spec not in self._systems:
                self._systems[spec] = load_system(spec)
                self._systems[spec].keep_cohort = True  # (a worker enrolls many times)
        return Recognizer(None, store, system=self._systems[spec])

    def decode(self, upload) -> tuple:
        """An uploaded file as (signal, rate), decoded within the limits."""
        name = _client_name(upload.filename)
        with tempfile.NamedTemporaryFile(prefix="speakergmm-upload-") as tmp:
            while chunk := upload.file.read(1 << 20):
                tmp.write(chunk)
            tmp.flush()
            return self.decoder.decode(tmp.name, name=name)


def _scope_of(method: str, path: str) -> str | None:
    """The token scope a request needs: none for the page, its files, the description
    and the health check; "write" to enroll or remove; "read" for the rest of the API."""
    if not path.startswith("/v1/") or path == "/v1/health":
        return None
    if method in ("POST", "DELETE", "PUT", "PATCH") and path.startswith("/v1/speakers/"):
        return "write"
    return "read"


def _client_name(name: str | None) -> str:
    """A client's file name as messages show it: its last part, printable, short."""
    from ..errors import plain

    base = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    base = plain(base)
    return base if len(base) <= 60 else base[:57] + "..."


def create_app(config: ServiceConfig):
    """The ASGI application serving ``config.store``."""
    from fastapi import Depends, FastAPI, File, Form, Security, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.security import HTTPBearer
    from starlette.exceptions import HTTPException

    engine = _Engine(config)
    tokens = TokenStore(tokens_path(config.store))
    # (beside the store and its tokens: every worker of the service counts in it)
    limiter = RateLimiter(config.rate, config.burst,
                          config.store.with_name(config.store.name + ".rates.db"))
    static = resources.files("speakergmm.serve") / "static"

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        engine.decoder.close()

    app = FastAPI(title="speakergmm", summary="Speaker enrollment, verification and "
                  "identification over one speaker store", version=_version(),
                  docs_url=None, redoc_url=None, lifespan=lifespan)

    def failure(status: int, message: str, headers=None):
        return JSONResponse(json.loads(error_body(status, message)), status_code=status,
                            headers=headers)

    def hide_path(message: str) -> str:
        # the server's paths are nobody's business: the store by its file name
        return message.replace(str(config.store.resolve()), config.store.name).replace(
            str(config.store), config.store.name)

    @app.exception_handler(ServiceError)
    async def _service_error(request, exc: ServiceError):
        return failure(exc.status, str(exc))

    @app.exception_handler(SpeakerGMMError)
    async def _library_error(request, exc: SpeakerGMMError):
        return failure(_status(exc), hide_path(" ".join(str(exc).split())))

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):  # (no such route, wrong method)
        return failure(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                       getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return failure(400, f"bad request: {where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):
        return failure(500, f"internal error: {type(exc).__name__} (a bug in speakergmm; "
                            "the service's log has the details)")

    # (the Gate enforces tokens before a request is read; this says so in the schema)
    bearer = HTTPBearer(auto_error=False, description="speakergmm serve token create")

    def access(scope: str):
        return Security(bearer, scopes=[scope])

    def store() -> SpeakerStore:
        return SpeakerStore(config.store)

    def speaker_id(speaker: str) -> str:
        check_speaker_id(speaker)
        return speaker

    def notes(caught) -> list[str]:
        return [hide_path(" ".join(str(w.message).split())) for w in caught]

    # --- the page -------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str):
        kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        suffix = os.path.splitext(name)[1]
        path = static / name
        if "/" in name or suffix not in kinds or not path.is_file():
            raise ServiceError(404, f"no file {_client_name(name)}")
        return FileResponse(path, media_type=kinds[suffix])

    @app.get("/v1/health", summary="Whether the service answers (no token needed)")
    def health():
        return {"status": "ok"}

    # --- the store ------------------------------------------------------------------------

    @app.get("/v1/store", summary="The store's speakers count, system and calibration",
             dependencies=[access("read")])
    def store_info():
        from ..store import store_summary

        with contextlib.closing(store()) as opened:
            if not opened.path.exists():
                return {"speakers": 0, "system": None, "calibration": {"source": None},
                        "trials": {"target": 0, "nontarget": 0, "speakers": 0},
                        "advice": None}
            return {key: hide_path(value) if isinstance(value, str) else value
                    for key, value in store_summary(opened).items()}

    @app.get("/v1/speakers", summary="Every enrolled speaker", dependencies=[access("read")])
    def speakers():
        with contextlib.closing(store()) as opened:
            return {"speakers": [dataclasses.asdict(s) for s in opened.list()]}

    @app.get("/v1/speakers/{speaker}", summary="One enrolled speaker",
             dependencies=[access("read")])
    def speaker(speaker: Annotated[str, Depends(speaker_id)]):
        with contextlib.closing(store()) as opened:
            return dataclasses.asdict(opened.info(speaker))

    @app.delete("/v1/speakers/{speaker}", summary="Remove an enrolled speaker",
                dependencies=[access("write")])
    def remove(speaker: Annotated[str, Depends(speaker_id)]):
        with engine.compute, contextlib.closing(store()) as opened:
            had = opened.calibration() is not None if opened.path.exists() else False
            cal = opened.remove(speaker)
        return {"removed": speaker, "calibration": "relearnt" if cal is not None else
                "dropped" if had else None}

    @app.post("/v1/speakers/{speaker}", summary="Enroll a speaker from recordings "
              "(mode: new, append or replace)", dependencies=[access("write")])
    def enroll(speaker: Annotated[str, Depends(speaker_id)],
               audio: Annotated[list[UploadFile], File(description="recordings")],
               response: Response,
               mode: Annotated[str, Form(pattern="^(new|append|replace)$")] = "new"):
        signals = [engine.decode(upload) for upload in audio]
        with engine.compute, contextlib.closing(store()) as opened, \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = engine.recognizer(opened).enroll(
                speaker, [y for y, _ in signals], sr=[sr for _, sr in signals], mode=mode)
        response.status_code = 201 if mode == "new" else 200
        return {**dataclasses.asdict(info), "notes": notes(caught)}

    @app.post("/v1/verify", summary="Is this recording the claimed speaker?",
              dependencies=[access("read")])
    def verify(speaker: Annotated[str, Form()], audio: Annotated[UploadFile, File()],
               prior: Annotated[float, Form(gt=0, lt=1)] = 0.5,
               threshold: Annotated[float | None, Form(allow_inf_nan=False)] = None):
        check_speaker_id(speaker)
        y, sr = engine.decode(audio)
        with engine.compute, contextlib.closing(store()) as opened, \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = engine.recognizer(opened).verify(speaker, y, sr=sr, prior=prior,
                                                      threshold=threshold)
        out = dataclasses.replace(result, audio=_client_name(audio.filename)).to_dict()
        return {**out, "notes": notes(caught)}

    @app.post("/v1/identify", summary="Who among the enrolled speakers is this?",
              dependencies=[access("read")])
    def identify(audio: Annotated[UploadFile, File()],
                 top: Annotated[int, Form(ge=1, le=100)] = 5,
                 prior: Annotated[float, Form(gt=0, lt=1)] = IDENTIFY_PRIOR,
                 threshold: Annotated[float | None, Form(allow_inf_nan=False)] = None):
        y, sr = engine.decode(audio)
        with engine.compute, contextlib.closing(store()) as opened, \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opened.check_enrolled()
            result = engine.recognizer(opened).identify(y, sr=sr, top=top, prior=prior,
                                                        threshold=threshold)
        out = dataclasses.replace(result, audio=_client_name(audio.filename)).to_dict()
        return {**out, "notes": notes(caught)}

    wrapped = BodyLimit(Gate(app, tokens=tokens, limiter=limiter,
                             scope_of=_scope_of if config.auth else lambda m, p: None),
                        config.max_bytes)
    if config.cors:
        from starlette.middleware.cors import CORSMiddleware

        wrapped = CORSMiddleware(wrapped, allow_origins=list(config.cors),
                                 allow_methods=["GET", "POST", "DELETE"],
                                 allow_headers=["Authorization"])
    wrapped.openapi = app.openapi  # (what the schema test and tools read)
    return wrapped


def _version() -> str:
    from .._version import __version__

    return __version__


def app_from_environment():
    """The application of the :class:`ServiceConfig` in :data:`CONFIG_VARIABLE`: what each
    of uvicorn's worker processes builds (``speakergmm serve --workers N``)."""
    from threadpoolctl import threadpool_limits

    text = os.environ.get(CONFIG_VARIABLE)
    if not text:
        raise SpeakerGMMError(f"{CONFIG_VARIABLE} is not set: start the service with "
                              "'speakergmm serve'")
    # The workers are the parallelism, one per core: BLAS threads on top of them would
    # only contend (and OpenBLAS's spin while they wait).
    threadpool_limits(1)
    return create_app(ServiceConfig.from_json(text))
