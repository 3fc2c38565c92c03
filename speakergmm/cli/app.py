"""The ``speakergmm`` command group: error handling and the options several commands share.

Every command is a few lines of option parsing around one library call. Errors from bad
input (:class:`~speakergmm.errors.SpeakerGMMError`, OSError, ValueError, TypeError) are
printed as one line on stderr with exit status 2; ``--debug`` shows the traceback instead.
Library modules are imported inside the commands, so that ``speakergmm --help`` and a
mistyped option answer at once.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import click

from .._version import __version__
from ..constants import ADAPTABLE, SCORING_METHODS
from ..errors import SpeakerGMMError, SpeakerGMMWarning

CONTEXT = dict(show_default=True, help_option_names=["-h", "--help"])
# Bad input reaches the user as these; anything else is a bug and keeps its traceback.
_USER_ERRORS = (SpeakerGMMError, OSError, ValueError, TypeError)


class _Group(click.Group):
    """A click group that turns errors from bad input into one readable line and exit
    status 2."""

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", SpeakerGMMWarning)
                warnings.showwarning = _show_warning(warnings.showwarning)
                return super().invoke(ctx)
        except _USER_ERRORS as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__
            click.echo(f"speakergmm: error: {message}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("speakergmm: interrupted", err=True)
            sys.exit(130)


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


# --- options shared by several commands ------------------------------------------------------

def jobs_option(f):
    """``-j N`` local worker processes, or ``--scheduler ADDRESS`` (``$SPEAKERGMM_SCHEDULER``)
    a Dask cluster: the command receives ``jobs`` as a number or as a
    :class:`~speakergmm.exec.DaskExecutor`, which every library call takes alike."""
    @functools.wraps(f)
    def run(*args, scheduler=None, **kwargs):
        if scheduler:
            from ..exec import DaskExecutor

            if kwargs.get("jobs", 1) != 1:
                raise click.UsageError("give -j (local processes) or --scheduler (a Dask "
                                       "cluster), not both")
            kwargs["jobs"] = DaskExecutor(scheduler)
            try:
                return f(*args, **kwargs)
            finally:
                kwargs["jobs"].close()
        return f(*args, **kwargs)

    run = click.option("--scheduler", default=None, envvar="SPEAKERGMM_SCHEDULER",
                       metavar="ADDRESS",
                       help="Run on a Dask cluster (tcp://host:8786) instead of local "
                            "processes; needs speakergmm[dask]. [env: "
                            "SPEAKERGMM_SCHEDULER]")(run)
    return click.option("-j", "--jobs", type=click.IntRange(min=1), default=1,
                        help="Worker processes.")(run)


def ubm_option(required: bool = False):
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
        return click.option("--relevance", type=click.FloatRange(min=0, min_open=True),
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
    return click.option("--prior", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                        default=default, help=help_)


def method_option(f):
    return click.option("--method", type=click.Choice(SCORING_METHODS),
                        default=SCORING_METHODS[0], help="Scoring: top-C Gaussian selection, "
                                                         "all components, or linear.")(f)
