"""The ``speakergmm`` command group: error handling and the options several commands share.

Every command is a few lines of option parsing around one library call. Errors from bad
input (:class:`~speakergmm.errors.SpeakerGMMError`, and OSError: a file that cannot be read
or written) are printed as one line on stderr with exit status 2; any other exception is a
bug, said as such in one line ("internal error", exit status 70) and never passed off as
bad input; ``--debug`` shows the traceback instead.
Library modules are imported inside the commands, so that ``speakergmm --help`` and a
mistyped option answer at once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import warnings
from pathlib import Path

import click

from .._version import __version__
from ..constants import ADAPTABLE, SCORING_METHODS
from ..errors import SpeakerGMMError, SpeakerGMMWarning, plain

CONTEXT = dict(show_default=True, help_option_names=["-h", "--help"])
# Bad input reaches the user as these; anything else is a bug.
_USER_ERRORS = (SpeakerGMMError, OSError)
#: Exit status of a bug (sysexits.h's EX_SOFTWARE): not 1 (a rejected claim, an unknown
#: voice) nor 2 (bad input).
INTERNAL_ERROR = 70


class _Group(click.Group):
    """A click group that turns errors from bad input into one readable line and exit
    status 2."""

    def invoke(self, ctx: click.Context):
        try:
            with _sigterm_interrupts(), warnings.catch_warnings():
                warnings.simplefilter("always", SpeakerGMMWarning)
                warnings.showwarning = _show_warning(warnings.showwarning)
                return super().invoke(ctx)
        except click.UsageError as exc:
            # one line, as for every other bad input (click's own is four)
            command = exc.ctx.command_path if exc.ctx is not None else "speakergmm"
            click.echo(f"speakergmm: error: {_one_line(exc.format_message())} (see "
                       f"'{command} --help')", err=True)
            sys.exit(2)
        except _USER_ERRORS as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            if isinstance(exc, OSError) and exc.filename and exc.strerror:
                exc = f"{exc.filename}: {exc.strerror}"  # not "[Errno 28] ...: 'path'"
            message = _one_line(str(exc)) or type(exc).__name__
            click.echo(f"speakergmm: error: {message}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("speakergmm: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"speakergmm: internal error: {type(exc).__name__}: "
                       f"{_one_line(str(exc))} (a bug in speakergmm, not in your input: "
                       "please report it with the traceback that --debug shows)", err=True)
            sys.exit(INTERNAL_ERROR)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM raises KeyboardInterrupt meanwhile, so that cleanup runs (worker pools are
    stopped, temporaries and staging folders removed) and the command ends as on Ctrl-C
    ("interrupted", exit status 130); only where signals can be handled (the main thread).
    Pool workers put SIGTERM back to its default (``exec``)."""
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: The longest message shown: a value quoted from a damaged file can be megabytes long.
MAX_MESSAGE = 1000


def _one_line(text: str) -> str:
    """A message as one line: whitespace runs (newlines too) as one space, other control
    characters (terminal escapes from an id in a file) shown escaped, and at most
    :data:`MAX_MESSAGE` characters (the middle of a longer one left out)."""
    line = plain(" ".join(text[:8 * MAX_MESSAGE].split() + (
        ["…", *text[-MAX_MESSAGE:].split()] if len(text) > 8 * MAX_MESSAGE else [])))
    if len(line) > MAX_MESSAGE:
        half = MAX_MESSAGE // 2 - 10
        line = f"{line[:half]} … [{len(line) - 2 * half:,} characters] … {line[-half:]}"
    return line


def _show_warning(default):
    """speakergmm's own warnings as one ``note:`` line on stderr; others as Python shows
    them."""
    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SpeakerGMMWarning):
            click.echo(f"speakergmm: note: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)
    return show


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="speakergmm")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Speaker recognition with GMM-UBM."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if not debug:
        # Exceptions Python can only report, not raise (a half-made Dask client's __del__
        # timing out as the process ends) would print a traceback after the one line an
        # error gets; --debug shows them.
        sys.unraisablehook = lambda unraisable: None


@contextlib.contextmanager
def progress_bar(label: str, quiet: bool = False):
    """A ``progress(step, total)`` callback for a library call: a bar on stderr when stderr
    is a terminal and not ``quiet``, made at the first call (when the total is known)."""
    bar = None

    def update(step: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr,
                                    hidden=quiet or not sys.stderr.isatty())
            bar.__enter__()
        bar.update(step)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def quiet_option(f):
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(f)


# --- options shared by several commands ------------------------------------------------------

class Finite(click.FloatRange):
    """A float option that is a finite number (click's FloatRange takes nan and inf: every
    comparison with nan is false)."""

    name = "finite number"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number.", param, ctx)
        return value

    def _describe_range(self) -> str:
        # click would show an unbounded range as "[x<=None]" in --help
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


class FeatureSource(click.Path):
    """A folder of features (a speakergmm archive, statistics, a data directory, or a Kaldi
    data directory with feats.scp), or a Kaldi table specifier ``scp:PATH`` / ``ark:PATH``
    (kept as a string; its file must exist)."""

    name = "features"

    def __init__(self):
        super().__init__(exists=True, file_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        text = str(value)
        if text.startswith(("scp:", "ark:")):
            if not Path(text[4:]).is_file():
                self.fail(f"{text}: no such Kaldi {text[:3]} file", param, ctx)
            return text
        return super().convert(value, param, ctx)


# Inputs that may hold outputs: roots audio paths are resolved against, which often hold
# the work folder too.
_ROOTS = ("audio_root", "corpus_root")


def writes(*outputs: str):
    """Name the command's output parameters. Before it runs, each is checked against every
    path the command was given (``_io.check_outputs``): an output that is an input, or a
    folder that holds one, is refused with one line, before anything is written."""
    def decorate(f):
        @functools.wraps(f)
        def run(*args, **kwargs):
            from .._io import check_outputs

            params = {p.name: p for p in click.get_current_context().command.params}

            def label(name):
                param = params.get(name)
                if isinstance(param, click.Option):
                    return max(param.opts, key=len)
                return param.human_readable_name if param is not None else name

            check_outputs({label(n): kwargs.get(n) for n in outputs},
                          {label(n): v for n, v in kwargs.items() if n not in outputs},
                          roots=tuple(label(n) for n in _ROOTS))
            for name in outputs:  # a file goes into an existing folder (folders are made)
                param, value = params.get(name), kwargs.get(name)
                if value is not None and isinstance(getattr(param, "type", None), click.Path) \
                        and not param.type.dir_okay and not Path(value).parent.is_dir():
                    raise SpeakerGMMError(f"{value}: the folder {Path(value).parent} does not "
                                          f"exist; create it, or give {label(name)} elsewhere")
            return f(*args, **kwargs)
        return run
    return decorate


def jobs_option(f):
    """``-j N`` local worker processes, or ``--scheduler ADDRESS`` (``$SPEAKERGMM_SCHEDULER``)
    a Dask cluster: the command receives ``executor``, a number of processes or a
    :class:`~speakergmm.exec.DaskExecutor`, which every library call takes alike."""
    from ..exec import SCHEDULER_TIMEOUT

    @functools.wraps(f)
    def run(*args, scheduler=None, scheduler_timeout=SCHEDULER_TIMEOUT, jobs=1, **kwargs):
        kwargs["executor"] = jobs
        if scheduler:
            from ..exec import DaskExecutor

            if jobs != 1:
                ctx = click.get_current_context()
                where = ("--scheduler" if ctx.get_parameter_source("scheduler")
                         != click.core.ParameterSource.ENVIRONMENT
                         else f"SPEAKERGMM_SCHEDULER={scheduler} (environment)")
                raise click.UsageError(f"give -j (local processes) or {where} (a Dask "
                                       "cluster), not both")
            kwargs["executor"] = DaskExecutor(scheduler, timeout=scheduler_timeout)
            try:
                return f(*args, **kwargs)
            finally:
                kwargs["executor"].close()
        return f(*args, **kwargs)

    run = click.option("--scheduler-timeout", type=Finite(min=0, min_open=True),
                       default=SCHEDULER_TIMEOUT, metavar="SECONDS",
                       help="How long to wait for the --scheduler to answer and for its "
                            "first worker to join.")(run)
    run = click.option("--scheduler", default=None, envvar="SPEAKERGMM_SCHEDULER",
                       metavar="ADDRESS",
                       help="Run on a Dask cluster (tcp://host:8786) instead of local "
                            "processes; needs speakergmm[dask], and speakergmm installed "
                            "on every worker. [env: SPEAKERGMM_SCHEDULER]")(run)
    return click.option("-j", "--jobs", type=click.IntRange(min=1), default=1,
                        help="Worker processes.")(run)


def ubm_option(required: bool = False, help_: str | None = None):
    if help_ is None:
        help_ = ("The UBM model file." if required else
                 "UBM model file [default: the bundled speechocean762 UBM].")
    # The bundled-UBM commands let the library name a missing file (and its fix).
    return click.option("--ubm", type=click.Path(dir_okay=False, exists=required,
                                                 path_type=Path),
                        required=required, default=None, help=help_)


def store_option(f):
    return click.option("--store", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, envvar="SPEAKERGMM_STORE",
                        help="Speaker store file [default: $SPEAKERGMM_HOME/speakers.db].")(f)


def map_options(f=None, *, relevance: float | None = 16.0, relevance_help: str = ""):
    """``--relevance`` and ``--adapt``, shared by every command that enrolls speakers
    (``@map_options``, or ``@map_options(relevance=None, relevance_help=...)`` where the
    default comes from elsewhere)."""
    def decorate(f):
        f = click.option("--adapt", default="means", show_default=True, callback=_parse_adapt,
                         help=f"Comma-separated MAP-adapted parameters: "
                              f"{', '.join(ADAPTABLE)} (e.g. means,weights,variances).")(f)
        return click.option("--relevance", type=Finite(min=0, min_open=True),
                            default=relevance, show_default=relevance is not None,
                            help="MAP relevance factor." + relevance_help)(f)
    return decorate if f is None else decorate(f)


def _parse_adapt(ctx, param, value):
    from ..gmm.adapt import parse_adapt

    try:
        return parse_adapt(value)
    except SpeakerGMMError as e:
        raise click.BadParameter(str(e)) from None


def channel_option(help_: str):
    return click.option("--channel", type=click.Path(dir_okay=False, exists=True,
                                                     path_type=Path), default=None,
                        help=help_)


def prior_option(default: float, help_: str):
    """A probability strictly between 0 and 1: the prior of a claim or of a calibration."""
    return click.option("--prior", type=Finite(0, 1, min_open=True, max_open=True),
                        default=default, help=help_)


def method_option(f):
    return click.option("--method", type=click.Choice(SCORING_METHODS),
                        default=SCORING_METHODS[0], help="Scoring: top-C Gaussian selection, "
                                                         "all components, or linear.")(f)
