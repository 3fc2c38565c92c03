"""``speakergmm download`` and ``speakergmm prepare``: corpora from their official
locations, and the data directories of their protocols."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .app import Finite, main, writes


def _corpus_function(corpus: str, verb: str):
    """``<verb>_<corpus>`` of the corpus's module, or None."""
    from ..corpora import corpus_module

    return getattr(corpus_module(corpus), f"{verb}_{corpus}", None)


def _flag_arguments(function, corpus: str, flags: dict[str, tuple[str, object]]) -> dict:
    """Keyword arguments for ``function`` from the flags given, ``flags`` mapping each to
    (parameter, value); a usage error naming the flag when ``function`` has no such
    parameter."""
    for flag, (name, _) in flags.items():
        if not _accepts(function, name):
            raise click.UsageError(f"{flag} does not apply to {corpus}: {function.__name__}() "
                                   f"has no {name} option; leave the flag out")
    return dict(flags.values())


def _accepts(function, parameter: str) -> bool:
    import inspect

    return parameter in inspect.signature(function).parameters


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class _DownloadProgress:
    """``progress(bytes_so_far, total_bytes_or_None)`` for the ``download_*`` functions,
    shown on stderr.

    On a terminal, a transfer whose size the server announced gets a progress bar, one of
    unknown size a byte count redrawn every second. Every transfer ends with one line (the
    bar's last state, else ``download: <size>``), also when stderr is not a terminal. A new
    transfer (the next file, or a mirror tried after a failure) shows as the count starting
    again or another total.
    """

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stderr
        self.tty = self.file.isatty()
        self.active, self.done, self.total = False, 0, None
        self.bar = None
        self.shown = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        if self.active and (done < self.done or total != self.total):
            self.finish()
        if not self.active:
            self.active, self.done, self.total = True, 0, total
            if total is not None and self.tty:
                self.bar = click.progressbar(
                    length=total, label="download", file=self.file,
                    item_show_func=lambda n: None if n is None else
                    f"{_size(n)} of {_size(total)}")
                self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(done - self.done, done)
        elif self.tty and time.monotonic() - self.shown >= 1:
            self.shown = time.monotonic()
            click.echo(f"\rdownload: {_size(done)}\033[K", file=self.file, nl=False)
        self.done = done

    def finish(self) -> None:
        """End the current transfer's display with its final line."""
        if not self.active:
            return
        self.active = False
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None
            return
        of = "" if self.total in (None, self.done) else f" of {_size(self.total)}"
        line = f"download: {_size(self.done)}{of}"
        click.echo(f"\r{line}\033[K" if self.tty else line, file=self.file)


@main.command("download")
@click.argument("corpus")
@click.argument("target_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-checksums", is_flag=True,
              help="Accept files whose checksums differ from the known ones (format and "
                   "counts are still checked): for corpora whose download has that option "
                   "(voxceleb1).")
def download_cmd(corpus: str, target_dir: Path, no_checksums: bool) -> None:
    """Download CORPUS from its official location into TARGET_DIR and verify it.

    CORPUS: fsdd, librispeech, speechocean762 (the whole corpus), or voxceleb1 (its trial
    lists: the audio needs registration with its publishers); timit comes from the LDC.

    Prints the corpus root (for 'speakergmm prepare') on stdout; progress and notes go to
    stderr. Interrupted (Ctrl-C, SIGTERM) or failed, it leaves nothing half-written.
    """
    import warnings

    download = _corpus_function(corpus, "download")
    if download is None:
        raise click.UsageError(f"{corpus} cannot be downloaded automatically; see its README")
    kwargs = _flag_arguments(download, corpus, {"--no-checksums": ("checksums", False)}
                             if no_checksums else {})
    progress = _DownloadProgress()
    if _accepts(download, "progress"):
        kwargs["progress"] = progress

    def note(message, category, filename, lineno, file=None, line=None):
        progress.finish()
        click.echo(f"note: {message}", err=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = note
            root = download(target_dir, **kwargs)
    finally:
        progress.finish()
    click.echo(str(root))


@main.command("prepare")
@click.argument("corpus")
@click.argument("corpus_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--allow-incomplete", is_flag=True,
              help="Accept a partial copy of the corpus (fewer speakers than the complete "
                   "one): for corpora that check it (timit).")
@click.option("--background-only", is_flag=True,
              help="Every speaker is background (UBM, cohort, calibration), none evaluated: "
                   "the data a system is built on (speechocean762).")
@click.option("--mirror", is_flag=True,
              help="The dev protocol's mirror image: its background and evaluation speakers "
                   "swapped, so that a setting is chosen on two disjoint sets of evaluation "
                   "speakers (speechocean762).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Conversations to simulate [20] (conversations).")
@click.option("--speakers", type=(click.IntRange(min=1), click.IntRange(min=1)), default=None,
              metavar="LO HI", help="Speakers per conversation [2 5] (conversations).")
@click.option("--seconds", type=(Finite(), Finite()), default=None, metavar="LO HI",
              help="Length of each conversation [40 60] (conversations).")
@click.option("--overlap", type=click.FloatRange(0, 1), default=None,
              help="Share of turns that overlap the one before [0.1] (conversations).")
@click.option("--snr", type=(Finite(), Finite()), default=None, metavar="LO HI",
              help="SNR of the noise floor, dB [30 40] (conversations).")
@click.option("--seed", type=int, default=None, help="Seed [0] (conversations).")
@click.option("--audio-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="What the data directory's relative wav.scp paths resolve "
                                 "against (conversations).")
@writes("out_dir")
def prepare_cmd(corpus: str, corpus_root: Path, out_dir: Path, allow_incomplete: bool,
                background_only: bool, mirror: bool, count, speakers, seconds, overlap, snr,
                seed, audio_root) -> None:
    """Write data directories, enrollment map and trials of CORPUS's protocol into OUT_DIR.

    CORPUS: fsdd, librispeech, speechocean762, timit or voxceleb1 (README.md, "Corpora and
    recipes", gives each protocol); or conversations: CORPUS_ROOT is then a data directory
    of single-speaker recordings, and OUT_DIR gets simulated conversations of its speakers
    with their reference RTTM, for diarization."""
    prepare = _corpus_function(corpus, "prepare")
    flags = {f"--{name.replace('_', '-')}": (name, value) for name, value in (
        ("count", count), ("speakers", speakers), ("seconds", seconds), ("overlap", overlap),
        ("snr", snr), ("seed", seed), ("audio_root", audio_root)) if value is not None}
    if allow_incomplete:
        flags["--allow-incomplete"] = ("complete", False)
    if background_only:
        flags["--background-only"] = ("background_only", True)
    if mirror:
        flags["--mirror"] = ("mirror", True)
    kwargs = _flag_arguments(prepare, corpus, flags)
    written = prepare(corpus_root, out_dir, **kwargs).paths
    for name, path in written.items():
        click.echo(f"{name}\t{path}")

