"""The ``speakergmm`` command: a thin layer that parses options and calls the public API.

Errors derived from :class:`speakergmm.errors.SpeakerGMMError` are printed as one line on
stderr with exit status 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path

import click

from .._version import __version__
from ..errors import SpeakerGMMError
from ..recognizer import DEFAULT_THRESHOLD

CONTEXT = dict(show_default=True, help_option_names=["-h", "--help"])


class _Group(click.Group):
    """A click group that turns library errors into one readable line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (SpeakerGMMError, OSError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"speakergmm: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("speakergmm: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="speakergmm")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Speaker recognition with GMM-UBM."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command("validate-data-dir")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--audio-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory that relative wav.scp paths resolve against [default: current directory].")
@click.option("--no-audio-check", is_flag=True, help="Do not check that audio files exist.")
def validate_data_dir_cmd(data_dir: Path, audio_root: Path | None, no_audio_check: bool) -> None:
    """Check a Kaldi-style data directory and report every problem with file and line."""
    from ..data.validate import validate_data_dir

    problems = validate_data_dir(data_dir, audio_root=audio_root, check_audio=not no_audio_check)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{data_dir}: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{data_dir}: OK")


@main.command("extract")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("feats_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--audio-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Directory that relative wav.scp paths resolve against [default: current directory].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, help="Worker processes.")
@click.option("--config", "config_spec", default=None, metavar="JSON|PRESET",
              help="Feature config: a JSON file, or a preset name (wideband, telephone) "
                   "[default: wideband].")
@click.option("--skip-bad", is_flag=True,
              help="Exit 0 even if some utterances failed (they are still listed).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def extract_cmd(data_dir: Path, feats_dir: Path, audio_root: Path | None, jobs: int,
                config_spec: str | None, skip_bad: bool, quiet: bool) -> None:
    """Extract features of every utterance of DATA_DIR into the archive FEATS_DIR.

    Resumable: re-running skips finished utterances. Failed utterances are listed in
    FEATS_DIR/failed; the exit status is 1 if any failed, unless --skip-bad.
    """
    from ..frontend.archive import extract_archive
    from ..data.datadir import read_data_dir
    from ..frontend.features import FeatureConfig

    config = FeatureConfig.resolve(config_spec)
    data = read_data_dir(data_dir)
    with click.progressbar(length=len(data.utt2spk), label="extract", file=sys.stderr,
                           hidden=quiet or not sys.stderr.isatty()) as bar:
        summary = extract_archive(data, feats_dir, config=config, audio_root=audio_root,
                                  jobs=jobs, progress=bar.update)
    click.echo(str(summary))
    if summary.failed:
        click.echo(f"{len(summary.failed)} utterance(s) failed; see {feats_dir / 'failed'}",
                   err=True)
        if not skip_bad:
            sys.exit(1)


# --- corpora: download, prepare --------------------------------------------------------

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


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM raises KeyboardInterrupt meanwhile, so that cleanup runs (staging folders
    are removed) and the command ends as on Ctrl-C ("interrupted", exit status 130); only
    where signals can be handled (the main thread)."""
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command("download")
@click.argument("corpus")
@click.argument("target_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-checksums", is_flag=True,
              help="Accept files whose checksums differ from the known ones (format and "
                   "counts are still checked): for corpora whose download has that option "
                   "(voxceleb1).")
def download_cmd(corpus: str, target_dir: Path, no_checksums: bool) -> None:
    """Download CORPUS from its official location into TARGET_DIR and verify it.

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
        with _sigterm_interrupts(), warnings.catch_warnings():
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
def prepare_cmd(corpus: str, corpus_root: Path, out_dir: Path, allow_incomplete: bool) -> None:
    """Write data directories, enrollment map and trials of CORPUS's protocol into OUT_DIR."""
    prepare = _corpus_function(corpus, "prepare")
    kwargs = _flag_arguments(prepare, corpus, {"--allow-incomplete": ("complete", False)}
                             if allow_incomplete else {})
    written = prepare(corpus_root, out_dir, **kwargs)
    for name, path in written.items():
        click.echo(f"{name}\t{path}")


@main.command("train-ubm")
@click.argument("feats_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-c", "--components", type=click.IntRange(min=1), required=True,
              help="Number of Gaussian components K.")
@click.option("-n", "--iterations", type=click.IntRange(min=0), default=10,
              help="EM iterations at the final K.")
@click.option("--init", type=click.Choice(["split", "kmeans++"]), default="split",
              help="Initialisation: binary splitting from one Gaussian, or k-means++.")
@click.option("--split-iterations", type=click.IntRange(min=0), default=2,
              help="EM iterations after each split.")
@click.option("--subsample", type=click.IntRange(min=1), default=1,
              help="Use every N-th frame.")
@click.option("--seed", type=int, default=0, help="Random seed (same seed, same model).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1,
              help="Worker processes for the statistics.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Model file to write (.npz).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE",
              help="Extra metadata stored in the model (e.g. a licence note); repeatable.")
def train_ubm_cmd(feats_dirs, components, iterations, init, split_iterations, subsample, seed,
                  jobs, output, meta) -> None:
    """Train a UBM on the feature archives FEATS_DIRS (all made with one feature config)."""
    from ..frontend.archive import ArchiveSet
    from ..gmm.ubm import train_ubm

    extra = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--meta")
        extra[key] = value
    features = ArchiveSet(feats_dirs)
    click.echo(f"train-ubm: {len(features)} utterances from {len(feats_dirs)} archive(s), "
               f"K={components}", err=True)
    model = train_ubm(features, n_components=components, n_iterations=iterations, init=init,
                      split_iterations=split_iterations, subsample=subsample, seed=seed,
                      jobs=jobs, metadata={**extra, "feature_config": features.config.to_dict(),
                                           "data": [str(d) for d in feats_dirs]},
                      progress=lambda report: click.echo(str(report), err=True))
    model.save(output)
    record = model.metadata["training"]
    click.echo(f"wrote {output}: K={model.n_components}, D={model.dim}, {record['frames']} "
               f"frames, final avg log-likelihood "
               f"{record['avg_llk_per_iteration'][-1]:.5f}, {record['seconds']:.1f} s")


@main.command("info")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
def info_cmd(model: Path) -> None:
    """Describe a model file (UBM or eigenchannel)."""
    from ..gmm import eigenchannel
    from ..errors import ModelError
    from ..gmm.mixture import DiagGMM

    try:
        click.echo(DiagGMM.load(model).describe())
    except ModelError as exc:
        try:
            click.echo(eigenchannel.describe_file(model))
        except ModelError:
            raise exc from None


@main.command("train-channel")
@click.argument("feats_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--ubm", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="The UBM the features are scored with.")
@click.option("--utt2class", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="'<utt> <class>' lines: recordings of one class differ only "
                                 "by session (e.g. speaker, or speaker and word) "
                                 "[default: the archive's utt2spk].")
@click.option("-r", "--factors", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rank R of the channel subspace.")
@click.option("-n", "--iterations", type=click.IntRange(min=0), default=10, show_default=True,
              help="EM iterations.")
@click.option("--relevance", type=click.FloatRange(min=0, min_open=True), default=16.0,
              show_default=True, help="Relevance factor of the class offsets.")
@click.option("--seed", type=int, default=0, help="Random seed of the initialisation.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1,
              help="Worker processes for the statistics.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Eigenchannel file to write (.npz).")
def train_channel_cmd(feats_dir, ubm, utt2class, factors, iterations, relevance, seed, jobs,
                      output) -> None:
    """Learn the session-variability (eigenchannel) subspace of a UBM from the background
    archive FEATS_DIR; 'speakergmm score --channel' then removes it from every utterance."""
    from ..frontend.archive import read_features
    from ..gmm.eigenchannel import EigenChannel
    from ..data.textmap import read_kaldi_map
    from ..gmm.mixture import DiagGMM

    model = DiagGMM.load(ubm)
    features = _check_config(read_features(feats_dir), model)
    classes = read_kaldi_map(utt2class, n_values=1) if utt2class else features.utt2spk
    click.echo(f"train-channel: {sum(u in features for u in classes)} utterances, "
               f"{len(set(classes.values()))} classes, R={factors}", err=True)
    channel = EigenChannel.fit(
        model, features, classes, n_factors=factors, n_iterations=iterations,
        relevance=relevance, seed=seed, jobs=jobs,
        progress=lambda i, obj: click.echo(f"iter {i:3d} objective {obj:.4f}", err=True))
    channel.save(output)
    click.echo(f"wrote {output}: R={factors}, UBM {model.fingerprint()}")


# --- speakers: enroll, verify, identify -----------------------------------------------------

def _ubm_option(f):
    return click.option("--ubm", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="UBM model file [default: the bundled speechocean762 UBM].")(f)


def _store_option(f):
    return click.option("--store", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, envvar="SPEAKERGMM_STORE",
                        help="Speaker store file [default: $SPEAKERGMM_HOME/speakers.db].")(f)


def _map_options(f):
    """``--relevance`` and ``--adapt``, shared by every command that enrolls speakers."""
    f = click.option("--adapt", default="means", show_default=True, callback=_parse_adapt,
                     help="Comma-separated MAP-adapted parameters: means, weights, "
                          "variances (e.g. means,weights,variances).")(f)
    return click.option("--relevance", type=click.FloatRange(min=0, min_open=True),
                        default=16.0, show_default=True, help="MAP relevance factor.")(f)


def _parse_adapt(ctx, param, value):
    from ..gmm.adapt import parse_adapt

    try:
        return parse_adapt(value)
    except SpeakerGMMError as e:
        raise click.BadParameter(str(e)) from None


def _recognizer(ubm: Path | None, store: Path | None, **kw):
    from ..recognizer import Recognizer

    return Recognizer(ubm, store, **kw)


def _channel_option(f):
    return click.option("--channel", type=click.Path(dir_okay=False, exists=True,
                                                     path_type=Path), default=None,
                        help="Remove session variability with this eigenchannel file "
                             "(speakergmm train-channel, for the same UBM); a store's "
                             "speakers are scored with the compensation they were enrolled "
                             "with.")(f)


@main.command("enroll")
@click.argument("speaker")
@click.argument("audio", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@_ubm_option
@_store_option
@click.option("--append", "mode", flag_value="append", help="Add the audio to an enrolled speaker.")
@click.option("--replace", "mode", flag_value="replace", help="Re-enroll a speaker from scratch.")
@_map_options
@_channel_option
def enroll_cmd(speaker, audio, ubm, store, mode, relevance, adapt, channel) -> None:
    """Enroll SPEAKER from one or more recordings."""
    rec = _recognizer(ubm, store, relevance=relevance, adapt=adapt, channel=channel)
    info = rec.enroll(speaker, audio, mode=mode or "new")
    click.echo(f"enrolled {info.id}: {info.utterances} recording(s), {info.seconds:.1f} s of "
               f"speech (store {rec.store.path})")


@main.command("verify")
@click.argument("speaker")
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@_ubm_option
@_store_option
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD,
              help="Accept when the score (average log-likelihood ratio) reaches this "
                   "(default: the bundled UBM's dev-protocol operating point).")
@click.option("--method", type=click.Choice(["topc", "full", "linear"]), default="topc",
              help="Scoring: top-5 Gaussian selection, all components, or linear.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_channel_option
def verify_cmd(speaker, audio, ubm, store, threshold, method, as_json, channel) -> None:
    """Is AUDIO spoken by SPEAKER? Exit status 0 accept, 1 reject, 2 error."""
    import json

    result = _recognizer(ubm, store, channel=channel).verify(speaker, audio, method=method,
                                                             threshold=threshold)
    click.echo(json.dumps(result.to_dict()) if as_json else str(result))
    sys.exit(0 if result.accepted else 1)


@main.command("identify")
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@_ubm_option
@_store_option
@click.option("--top", type=click.IntRange(min=1), default=5, help="Speakers to list.")
@click.option("--threshold", type=float, default=None,
              help="Below this best score the answer is 'unknown' (open set).")
@click.option("--method", type=click.Choice(["topc", "full", "linear"]), default="topc")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_channel_option
def identify_cmd(audio, ubm, store, top, threshold, method, as_json, channel) -> None:
    """Who is speaking in AUDIO? Ranks the enrolled speakers."""
    import json

    result = _recognizer(ubm, store, channel=channel).identify(audio, top=top,
                                                               threshold=threshold,
                                                               method=method)
    click.echo(json.dumps(result.to_dict()) if as_json else str(result))


@main.group("speakers", invoke_without_command=True)
@_store_option
@click.pass_context
def speakers_cmd(ctx, store) -> None:
    """List, show or remove enrolled speakers (default: list)."""
    from ..store import SpeakerStore

    ctx.obj["store"] = SpeakerStore(store)
    if ctx.invoked_subcommand is None:
        ctx.invoke(speakers_list)


@speakers_cmd.command("list")
@click.pass_context
def speakers_list(ctx) -> None:
    """List enrolled speakers."""
    from ..recognizer import describe_store

    click.echo(describe_store(ctx.obj["store"]))


@speakers_cmd.command("show")
@click.argument("speaker")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def speakers_show(ctx, speaker, as_json) -> None:
    """Show one enrolled speaker."""
    import dataclasses
    import json

    info = dataclasses.asdict(ctx.obj["store"].info(speaker))
    if as_json:
        click.echo(json.dumps(info))
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")


@speakers_cmd.command("remove")
@click.argument("speaker")
@click.pass_context
def speakers_remove(ctx, speaker) -> None:
    """Remove an enrolled speaker."""
    ctx.obj["store"].remove(speaker)
    click.echo(f"removed {speaker}")


# --- trial lists ----------------------------------------------------------------------

def _open_features(path: Path, ubm, audio_root: Path | None, stack):
    """A feature archive, or a data directory extracted on the fly with the UBM's config;
    refused when made with another config than the UBM's."""
    import tempfile

    from ..frontend.archive import extract_archive, read_features
    from ..frontend.features import FeatureConfig

    config = FeatureConfig.from_dict(ubm.metadata.get("feature_config") or {})
    if not (path / "config.json").is_file() and (path / "wav.scp").is_file():
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="speakergmm-"))
        summary = extract_archive(path, tmp, config=config, audio_root=audio_root)
        if summary.failed:
            utt, reason = next(iter(summary.failed.items()))
            raise click.ClickException(f"{path}: {len(summary.failed)} utterance(s) failed, "
                                       f"e.g. {utt}: {reason}")
        path = Path(tmp)
    return _check_config(read_features(path), ubm)


def _check_config(feats, ubm):
    from ..frontend.features import FeatureConfig

    config = FeatureConfig.from_dict(ubm.metadata.get("feature_config") or {})
    if "feature_config" in ubm.metadata and feats.config != config:
        raise click.ClickException(f"{feats.path} was extracted with another feature config "
                                   "than the UBM was trained with; re-extract with the UBM's "
                                   "config")
    return feats


def _compensator(channel: Path | None, ubm):
    """Wraps feature mappings so that they come out channel-compensated (identity without
    a channel file)."""
    if channel is None:
        return lambda feats: feats
    from ..gmm.eigenchannel import CompensatedFeatures, EigenChannel

    model = EigenChannel.load(channel, ubm)
    return lambda feats: CompensatedFeatures(feats, model)


@main.command("score")
@click.argument("trials_file", metavar="TRIALS", type=click.Path(dir_okay=False, exists=True,
                                                                  path_type=Path))
@click.option("--enroll", "enroll_path", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Enrollment features (archive) or data directory.")
@click.option("--enroll-map", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="model -> utterances [default: one model per speaker].")
@click.option("--test", "test_path", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Test features (archive) or data directory.")
@_ubm_option
@click.option("--audio-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="For data directories given instead of archives.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Scores file: '<model> <test> <score>' per trial.")
@click.option("--method", type=click.Choice(["topc", "full", "linear"]), default="topc")
@click.option("-c", "--top-c", "c", type=click.IntRange(min=1), default=5,
              help="Gaussians per frame for top-C scoring.")
@_map_options
@click.option("--norm", type=click.Choice(["none", "znorm", "tnorm", "ztnorm", "snorm",
                                           "asnorm"]), default="none",
              help="Score normalisation against --cohort.")
@click.option("--cohort", "cohort_path", type=click.Path(file_okay=False, exists=True,
                                                         path_type=Path),
              default=None, help="Impostor cohort features (archive with utt2spk).")
@click.option("--cohort-utts", type=click.IntRange(min=1), default=500,
              help="At most this many cohort utterances.")
@click.option("--cohort-enroll-utts", type=click.IntRange(min=1), default=None,
              help="Enroll each cohort model on at most this many of its speaker's "
                   "utterances (spread evenly), to match the target models' enrollment "
                   "[default: all].")
@click.option("--top-n", type=click.IntRange(min=1), default=None,
              help="Cohort size for adaptive S-norm (asnorm).")
@click.option("--calibration", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Apply a calibration (speakergmm calibrate) to the scores.")
@click.option("--channel", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Remove session variability from every utterance (enroll, "
                                 "test, cohort) with this eigenchannel file "
                                 "(speakergmm train-channel).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, help="Worker processes.")
def score_cmd(trials_file, enroll_path, enroll_map, test_path, ubm, audio_root, output, method,
              c, relevance, adapt, norm, cohort_path, cohort_utts, cohort_enroll_utts, top_n,
              channel, calibration, jobs) -> None:
    """Score a trial list (Kaldi or VoxCeleb format) with models enrolled from archives."""
    import contextlib

    from ..backend.calibration import Calibration
    from ..data.trials import read_enroll_map, read_trials
    from ..gmm.mixture import DiagGMM
    from ..batch import Cohort, enroll_models, score_trial_list
    from ..pretrained import load_default_ubm
    from ..data.scores import write_scores

    model = DiagGMM.load(ubm) if ubm else load_default_ubm()
    trials = read_trials(trials_file)
    compensate = _compensator(channel, model)
    with contextlib.ExitStack() as stack:
        enroll_feats = compensate(_open_features(enroll_path, model, audio_root, stack))
        test_feats = compensate(_open_features(test_path, model, audio_root, stack))
        if enroll_map:
            spk2utt = read_enroll_map(enroll_map)
        else:
            spk2utt = {}
            for utt, spk in sorted(enroll_feats.utt2spk.items()):
                spk2utt.setdefault(spk, []).append(utt)
        wanted = set(trials.enroll)
        models = enroll_models(model, enroll_feats,
                               {m: u for m, u in spk2utt.items() if m in wanted},
                               relevance=relevance, adapt=adapt)
        cohort = None
        if cohort_path is not None:
            feats = compensate(_open_features(cohort_path, model, audio_root, stack))
            cohort = Cohort.from_archive(model, feats, feats.utt2spk,
                                         max_utterances=cohort_utts,
                                         enroll_utterances=cohort_enroll_utts,
                                         relevance=relevance,
                                         adapt=adapt)
        scores = score_trial_list(model, trials, models, test_feats, method=method, c=c,
                                  norm=norm, cohort=cohort, top_n=top_n, jobs=jobs)
    if calibration:
        scores = Calibration.load(calibration).transform(scores)
    write_scores(output, trials.enroll, trials.test, scores)
    click.echo(f"wrote {len(scores)} scores to {output}", err=True)


@main.command("calibrate")
@click.argument("scores_file", metavar="SCORES", type=click.Path(dir_okay=False, exists=True,
                                                                  path_type=Path))
@click.option("--trials", "trials_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trial key (target/nontarget) for the scores.")
@click.option("--prior", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.01, help="Target prior the calibration is optimised for.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def calibrate_cmd(scores_file, trials_file, prior, output) -> None:
    """Train a linear calibration (scores -> log-likelihood ratios) on development scores."""
    from ..backend.calibration import Calibration
    from ..eval.metrics import cllr
    from ..data.trials import read_trials
    from ..data.scores import labelled_scores

    tar, non = labelled_scores(scores_file, read_trials(trials_file))
    cal = Calibration().fit(tar, non, prior=prior)
    cal.save(output)
    click.echo(f"wrote {output}: llr = {cal.scale_:.4f} * score + {cal.offset_:.4f}; Cllr "
               f"{cllr(tar, non):.3f} -> {cllr(cal.transform(tar), cal.transform(non)):.3f} bits")


@main.command("apply-calibration")
@click.argument("calibration", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("scores_file", metavar="SCORES", type=click.Path(dir_okay=False, exists=True,
                                                                  path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Calibrated scores (log-likelihood ratios), same trials and order.")
def apply_calibration_cmd(calibration, scores_file, output) -> None:
    """Map the scores of a score file to log-likelihood ratios with CALIBRATION (from
    'speakergmm calibrate'), without scoring again."""
    import numpy as np

    from ..backend.calibration import Calibration
    from ..data.scores import read_scores, write_scores

    cal = Calibration.load(calibration)
    scores = read_scores(scores_file)
    write_scores(output, [e for e, _ in scores], [t for _, t in scores],
                 cal.transform(np.fromiter(scores.values(), np.float64, len(scores))))
    click.echo(f"wrote {len(scores)} calibrated scores to {output}", err=True)


@main.command("evaluate")
@click.argument("score_files", metavar="SCORES...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--trials", "trials_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trial key (Kaldi target/nontarget or VoxCeleb 1/0).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report directory (report.json, report.md, report.html, det.png, hist.png).")
def evaluate_cmd(score_files, trials_file, output) -> None:
    """EER, minDCF, actDCF, Cllr and a DET plot for score files against a trial key."""
    from ..data.trials import read_trials
    from ..eval.report import evaluate, write_report

    results = evaluate(score_files, read_trials(trials_file))
    files = write_report(results, output)
    for name, system in results["systems"].items():
        f = system["figures"]
        click.echo(f"{name}: EER {100 * f['eer_rocch']:.2f}% (ROCCH), "
                   f"{100 * f['eer_linear']:.2f}% (linear); minDCF vox "
                   f"{f['min_dcf']['vox']['value']:.3f}, sre10 {f['min_dcf']['sre10']['value']:.3f}"
                   + ("" if f["identification_accuracy"] is None else
                      f"; closed-set identification {100 * f['identification_accuracy']:.1f}%"))
    click.echo(f"report: {files['html']}")
