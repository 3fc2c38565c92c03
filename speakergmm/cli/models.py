"""``speakergmm train-ubm``, ``train-channel``, ``stats`` and ``info``: the models, and the
statistics every later stage reads."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..constants import UBM_INITS
from .app import (
    FeatureSource,
    Finite,
    channel_option,
    jobs_option,
    main,
    prior_option,
    quiet_option,
    ubm_option,
    writes,
)

_META_HELP = "Extra metadata stored in the model (e.g. a licence note); repeatable."


@main.command("train-ubm")
@click.argument("feats_dirs", nargs=-1, required=True, type=FeatureSource())
@click.option("-c", "--components", type=click.IntRange(min=1), required=True,
              help="Number of Gaussian components K.")
@click.option("-n", "--iterations", type=click.IntRange(min=0), default=10,
              help="EM iterations at the final K.")
@click.option("--init", type=click.Choice(UBM_INITS), default=UBM_INITS[0],
              help="Initialisation: binary splitting from one Gaussian, or k-means++.")
@click.option("--split-iterations", type=click.IntRange(min=0), default=2,
              help="EM iterations after each split.")
@click.option("--subsample", type=click.IntRange(min=1), default=1,
              help="Use every N-th frame.")
@click.option("--seed", type=int, default=0, help="Random seed (same seed, same model).")
@jobs_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Model file to write (.npz).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help=_META_HELP)
@writes("output")
def train_ubm_cmd(feats_dirs, components, iterations, init, split_iterations, subsample, seed,
                  executor, output, meta) -> None:
    """Train a UBM on the feature archives FEATS_DIRS (all made with one feature config).

    A run that is interrupted (Ctrl-C, kill, crash) leaves a hidden resume file beside the
    output; the same command again continues after the last finished iteration and gives
    the same model bit for bit."""
    from ..gmm.ubm import train_ubm
    from ..sources import open_training_features

    extra = _meta(meta)
    features = open_training_features(feats_dirs)
    # A run killed (or stopped) part way resumes after its last finished iteration.
    checkpoint = output.with_name(f".{output.name}.resume.npz")
    header = [f"train-ubm: {len(features)} utterances from {len(feats_dirs)} archive(s), "
              f"K={components}"]

    def progress(report) -> None:
        while header:  # said once training is under way: a refusal stays one line
            click.echo(header.pop(), err=True)
        click.echo(str(report), err=True)

    try:
        model = train_ubm(features, n_components=components, n_iterations=iterations,
                          init=init, split_iterations=split_iterations, subsample=subsample,
                          seed=seed, executor=executor,
                          metadata=extra,
                          progress=progress, checkpoint=checkpoint)
    except OSError as exc:
        if exc.filename != str(checkpoint):
            raise
        # the first checkpoint fails where the model would: say it of the -o path, at once
        raise OSError(exc.errno, exc.strerror, str(output)) from None
    model.save(output)
    checkpoint.unlink(missing_ok=True)
    record = model.metadata["training"]
    if "resumed_after_iteration" in record:
        click.echo(f"resumed after iteration {record['resumed_after_iteration']} of an "
                   "interrupted run", err=True)
    click.echo(f"wrote {output}: K={model.n_components}, D={model.dim}, {record['frames']} "
               f"frames, final avg log-likelihood "
               f"{record['avg_llk_per_iteration'][-1]:.5f}, {record['seconds']:.1f} s")


def _meta(items) -> dict[str, str]:
    """``--meta KEY=VALUE`` options as a dict."""
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--meta")
        extra[key] = value
    return extra


@main.command("info")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
def info_cmd(model: Path) -> None:
    """Describe a model file: a UBM, an eigenchannel, an i-vector extractor, a recognition
    system (a file of 'speakergmm build-system', or the name of a bundled one: wideband,
    telephone), a vector back-end (speakergmm train-plda), a speech detector
    (speakergmm train-sad) or a diarization model (speakergmm train-diarization)."""
    from ..backend.vectors import VectorBackend
    from ..diarization import Diarizer
    from ..errors import ModelError
    from ..gmm import factor
    from ..gmm.mixture import DiagGMM
    from ..gmm.sad import SpeechDetector
    from ..system import BUNDLED_SYSTEMS, load_system

    if str(model) in BUNDLED_SYSTEMS and not model.exists():
        click.echo(load_system(str(model)).describe())
        return
    kinds = ((lambda: DiagGMM.load(model).describe()), (lambda: factor.describe_file(model)),
             (lambda: load_system(model).describe()),
             (lambda: _describe_backend(VectorBackend.load(model))),
             (lambda: SpeechDetector.load(model).describe()),
             (lambda: Diarizer.describe_file(model)))
    for describe in kinds:
        try:
            click.echo(describe())
            return
        except ModelError as exc:
            # another kind of model file: try the next; anything else is this file's fault
            if "format is " not in str(exc) or "expected" not in str(exc):
                raise
    raise ModelError(f"{model}: not a model file info describes (a UBM, eigenchannel, "
                     "i-vector extractor, system, vector back-end, speech detector or "
                     "diarization model of speakergmm)")


@main.command("train-sad")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The speech detector file to write (.npz).")
@click.option("--band", type=click.Choice(["wideband", "telephone"]), default="wideband",
              show_default=True, help="16 kHz or 8 kHz audio (the audio is resampled).")
@click.option("--audio-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Directory that relative wav.scp paths resolve against "
                                 "[default: current directory].")
@click.option("-c", "--components", type=click.IntRange(min=1), default=64,
              show_default=True, help="Gaussians of each of the two models.")
@click.option("--seed", type=int, default=0, show_default=True)
@quiet_option
@writes("output")
def train_sad_cmd(data_dir: Path, output: Path, band, audio_root, components, seed,
                  quiet) -> None:
    """Train a speech detector that holds in noise on DATA_DIR's clean speech: mixtures of
    its recordings with pauses, degraded by coloured noise, babble of its other
    recordings, simulated rooms and G.711, labelled by each clean recording's energy VAD
    (speakergmm.gmm.sad)."""
    from ..gmm.sad import train_speech_detector

    detector = train_speech_detector(
        data_dir, band=band, audio_root=audio_root, seed=seed, n_components=components,
        progress=None if quiet else (lambda line: click.echo(f"train-sad: {line}",
                                                             err=True)))
    detector.save(output)
    click.echo(f"wrote {output}: {detector!r}")


def _describe_backend(backend) -> str:
    meta = backend.metadata
    steps = [entry.get("kind") for entry in meta.get("pipeline", [])]
    record = meta.get("training") or {}
    return (f"speakergmm vector back-end: {' -> '.join([*steps, 'PLDA'])}, PLDA dimension "
            f"{backend.plda.mean.size}; for i-vectors of dimension {meta.get('dim')} from "
            f"extractor {meta.get('extractor_fingerprint')}; trained on "
            f"{record.get('vectors')} vectors of {record.get('speakers')} speakers")


@main.command("train-channel")
@click.argument("feats_dir", type=FeatureSource())
@ubm_option(required=True)
@click.option("--utt2class", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="'<utt> <class>' lines: recordings of one class differ only "
                                 "by session (e.g. speaker, or speaker and word) "
                                 "[default: the archive's utt2spk].")
@click.option("-r", "--factors", type=click.IntRange(min=1), default=10,
              help="Rank R of the channel subspace.")
@click.option("-n", "--iterations", type=click.IntRange(min=0), default=10,
              help="EM iterations.")
@click.option("--relevance", type=Finite(min=0, min_open=True), default=16.0,
              help="Relevance factor of the class offsets.")
@click.option("--seed", type=int, default=0, help="Random seed of the initialisation.")
@jobs_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Eigenchannel file to write (.npz).")
@writes("output")
def train_channel_cmd(feats_dir, ubm, utt2class, factors, iterations, relevance, seed, executor,
                      output) -> None:
    """Learn the session-variability (eigenchannel) subspace of a UBM from the background
    archive FEATS_DIR (features, or statistics from 'speakergmm stats' without --channel);
    'speakergmm score --channel' then removes it from every utterance."""
    from ..data.textmap import read_kaldi_map
    from ..gmm.eigenchannel import EigenChannel
    from ..gmm.mixture import DiagGMM
    from ..gmm.statsarchive import UNCOMPENSATED
    from ..sources import open_features

    model = DiagGMM.load(ubm)
    features = open_features(feats_dir, model, channel_fix=UNCOMPENSATED)
    classes = read_kaldi_map(utt2class, n_values=1) if utt2class else features.utt2spk
    click.echo(f"train-channel: {sum(u in features for u in classes)} utterances, "
               f"{len(set(classes.values()))} classes, R={factors}", err=True)
    channel = EigenChannel.fit(
        model, features, classes, n_factors=factors, n_iterations=iterations,
        relevance=relevance, seed=seed, executor=executor,
        progress=_iteration)
    channel.save(output)
    click.echo(f"wrote {output}: R={factors}, UBM {model.fingerprint()}")


def _iteration(i: int, objective: float) -> None:
    """Progress of a subspace's EM training (train-channel, train-ivector)."""
    click.echo(f"iter {i:3d} objective {objective:.4f}", err=True)


@main.command("train-ivector")
@click.argument("feats_dir", type=FeatureSource())
@ubm_option(required=True)
@click.option("-r", "--factors", type=click.IntRange(min=1), default=400, show_default=True,
              help="Dimension R of the i-vectors.")
@click.option("-n", "--iterations", type=click.IntRange(min=0), default=10, show_default=True,
              help="EM iterations.")
@click.option("--no-min-divergence", is_flag=True,
              help="Skip the minimum-divergence re-estimation after each M-step.")
@click.option("--subset", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Only the utterances that begin the lines of this file "
                                 "(or one id per line) [default: all].")
@click.option("--seed", type=int, default=0, help="Random seed of the initialisation.")
@jobs_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="i-vector extractor file to write (.npz).")
@writes("output")
def train_ivector_cmd(feats_dir, ubm, factors, iterations, no_min_divergence, subset, seed,
                      executor, output) -> None:
    """Learn the total variability subspace (the i-vector extractor) of a UBM from the
    background archive FEATS_DIR: statistics from 'speakergmm stats' (read again at each
    pass: memory does not grow with the data) or features."""
    from ..data.textmap import read_ids
    from ..gmm.ivector import IVectorExtractor
    from ..gmm.mixture import DiagGMM
    from ..gmm.statsarchive import UNCOMPENSATED
    from ..sources import open_features

    model = DiagGMM.load(ubm)
    features = open_features(feats_dir, model, channel_fix=UNCOMPENSATED)
    utts = None if subset is None else read_ids(subset)
    click.echo(f"train-ivector: {len(features if utts is None else utts)} utterances, "
               f"R={factors}", err=True)
    extractor = IVectorExtractor.fit(
        model, features, utterances=utts, n_factors=factors, n_iterations=iterations,
        min_divergence=not no_min_divergence, seed=seed, executor=executor,
        progress=_iteration)
    extractor.save(output)
    click.echo(f"wrote {output}: R={factors}, UBM {model.fingerprint()} "
               f"({extractor.fingerprint()})")


@main.command("extract-ivectors")
@click.argument("feats_dir", type=FeatureSource())
@ubm_option(required=True)
@click.option("--extractor", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="i-vector extractor file (speakergmm train-ivector).")
@click.option("--subset", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Only the utterances that begin the lines of this file "
                                 "(or one id per line) [default: all].")
@jobs_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Vector archive directory to write.")
@click.option("--format", "format_", type=click.Choice(["speakergmm", "kaldi"]),
              default="speakergmm", show_default=True,
              help="speakergmm's vector archive, or Kaldi's: binary ark parts and an "
                   "ivector.scp with absolute paths, as Kaldi's extract_ivectors.sh writes "
                   "(for Kaldi's or ESPnet's PLDA; speakergmm reads it with the extra "
                   "[kaldi]).")
@quiet_option
@writes("output")
def extract_ivectors_cmd(feats_dir, ubm, extractor, subset, executor, output, format_,
                         quiet) -> None:
    """Write the i-vector of every utterance of FEATS_DIR (statistics or features) into a
    vector archive, for 'speakergmm score --backend'. Resumable, like extract."""
    from ..data.textmap import read_ids
    from ..gmm.ivector import IVectorExtractor, extract_ivectors
    from ..gmm.mixture import DiagGMM
    from ..gmm.statsarchive import UNCOMPENSATED
    from ..sources import open_features

    model = DiagGMM.load(ubm)
    ivector = IVectorExtractor.load(extractor, model)
    features = open_features(feats_dir, model, channel_fix=UNCOMPENSATED)
    utts = None if subset is None else read_ids(subset)
    with click.progressbar(length=len(features if utts is None else utts), label="i-vectors",
                           file=sys.stderr, hidden=quiet or not sys.stderr.isatty()) as bar:
        archive = extract_ivectors(ivector, features, output, utterances=utts, executor=executor,
                                   progress=bar.update, format=format_)
    click.echo(f"wrote {output}: {len(archive)} i-vectors of dimension {archive.dim}")


@main.command("train-plda")
@click.argument("vectors_dir", type=FeatureSource())
@click.option("--utt2spk", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Speakers of the training vectors [default: the archive's "
                                 "utt2spk].")
@click.option("--whiten", is_flag=True, help="Whiten (centre, decorrelate) first.")
@click.option("--lda", type=click.IntRange(min=1), default=None,
              help="Reduce by LDA to this many dimensions.")
@click.option("--wccn", is_flag=True, help="Within-class covariance normalisation.")
@click.option("--no-length-norm", is_flag=True, help="Skip length normalisation.")
@click.option("-n", "--iterations", type=click.IntRange(min=1), default=10, show_default=True,
              help="PLDA EM iterations.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Vector back-end file to write (.npz).")
@writes("output")
def train_plda_cmd(vectors_dir, utt2spk, whiten, lda, wccn, no_length_norm, iterations,
                   output) -> None:
    """Train the vector back-end on the labelled i-vectors of VECTORS_DIR (an archive from
    extract-ivectors, or Kaldi's: a folder with ivector.scp or xvector.scp, scp:/ark:): the
    transforms in the order whitening, LDA, WCCN, length normalisation, then a
    two-covariance PLDA; 'speakergmm score --backend plda|cosine
    --plda FILE' scores with it."""
    from ..backend.vectors import VectorBackend
    from ..data.textmap import read_kaldi_map
    from ..sources import open_vectors

    vectors = open_vectors(vectors_dir)
    labels = read_kaldi_map(utt2spk, n_values=1) if utt2spk else vectors.utt2spk
    utts = [u for u in labels if u in vectors]
    click.echo(f"train-plda: {len(utts)} vectors of {len(set(labels[u] for u in utts))} "
               f"speakers, dimension {vectors.dim}", err=True)
    backend = VectorBackend.train(
        vectors, labels, whiten=whiten, lda=lda, wccn=wccn, length_norm=not no_length_norm,
        n_iterations=iterations,
        progress=lambda i, llk: click.echo(f"iter {i:3d} log-likelihood {llk:.6f}",
                                           err=True))
    backend.save(output)
    record = backend.plda.training
    done = (f"converged after {record['iterations']} iterations" if record["converged"] else
            f"{record['iterations']} iterations, not converged: more with -n")
    click.echo(f"wrote {output}: {backend.pipeline!r}, PLDA of dimension {backend.plda.dim} "
               f"({done})")


@main.command("stats")
@click.argument("feats_dir", type=FeatureSource())
@ubm_option(required=True)
@channel_option("Compensate every utterance with this eigenchannel file first (the "
                "statistics are then tied to it).")
@click.option("--second-order", is_flag=True,
              help="Keep second-order statistics too (needed to MAP-adapt variances).")
@click.option("--subset", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Only the utterances that begin the lines of this file "
                                 "(e.g. the utt2class given to train-channel) [default: all].")
@jobs_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Statistics archive directory to write.")
@quiet_option
@writes("output")
def stats_cmd(feats_dir, ubm, channel, second_order, subset, executor, output, quiet) -> None:
    """Compute each utterance's Baum-Welch statistics under a UBM once, for enrollment,
    cohorts and train-channel to read. Resumable, like extract."""
    from ..data.textmap import read_ids
    from ..gmm.eigenchannel import EigenChannel
    from ..gmm.mixture import DiagGMM
    from ..gmm.statsarchive import extract_stats
    from ..sources import open_features

    model = DiagGMM.load(ubm)
    features = open_features(feats_dir, model, stats_ok=False)
    comp = None if channel is None else EigenChannel.load(channel, model)
    utts = None if subset is None else read_ids(subset)
    with click.progressbar(length=len(features if utts is None else utts), label="stats",
                           file=sys.stderr, hidden=quiet or not sys.stderr.isatty()) as bar:
        archive = extract_stats(model, features, output, channel=comp,
                                second_order=second_order, utterances=utts, executor=executor,
                                progress=bar.update)
    click.echo(f"wrote {output}: {len(archive)} utterances, K={archive.K}, D={archive.D}"
               + ("" if comp is None else f", channel {comp.fingerprint()}"))


def _calibration_options(command):
    """The options of the trials a system's calibration (and quality calibration) is
    learnt on: build-system's and calibrate-system's."""
    def a_file(name, help_):
        return click.option(name, type=click.Path(dir_okay=False, exists=True,
                                                  path_type=Path), default=None, help=help_)

    options = [
        a_file("--cal-enroll-map", "Calibration speakers' enrollment (held out of cohort "
                                   "and channel)."),
        a_file("--cal-trials", "Calibration trials among them [default: uncalibrated]."),
        prior_option(0.01, "Target prior the calibration is trained for."),
        a_file("--quality-trials", "The calibration trials with degraded copies of their "
                                   "test recordings (speakergmm augment) as further tests: a "
                                   "quality calibration is learnt on them, so that a short, "
                                   "noisy or narrowband test gets a smaller LLR [default: "
                                   "none]. Needs --quality-audio."),
        click.option("--quality-audio", type=click.Path(exists=True, file_okay=False,
                                                        path_type=Path), multiple=True,
                     help="Data directories holding those test recordings, whose SNR and "
                          "band are measured; repeatable."),
        click.option("--audio-root", type=click.Path(exists=True, file_okay=False,
                                                     path_type=Path), default=None,
                     help="Directory that relative wav.scp paths of --quality-audio "
                          "resolve against [default: current directory]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _calibration_inputs(model, cal_enroll_map, cal_trials, quality_trials, quality_audio,
                        audio_root) -> dict:
    """build_system's / calibrate_system's calibration arguments from the options."""
    from ..data.trials import read_enroll_map, read_trials
    from ..errors import ParameterError
    from ..frontend.quality import measure_data_dir
    from ..sources import feature_config_of

    if (quality_trials is None) != (not quality_audio):
        raise ParameterError("--quality-trials and --quality-audio go together: the trials, "
                             "and the data directories of their test recordings")
    quality = q_trials = None
    if quality_trials is not None:
        q_trials = read_trials(quality_trials)
        tests = sorted(set(q_trials.test))
        rate = feature_config_of(model).sample_rate
        quality = {}
        for data in quality_audio:
            quality.update(measure_data_dir(data, sr=rate, utts=tests, audio_root=audio_root))
    return {"calibration_enroll_map": None if cal_enroll_map is None
            else read_enroll_map(cal_enroll_map),
            "calibration_trials": None if cal_trials is None else read_trials(cal_trials),
            "quality_trials": q_trials, "quality": quality}


def _log(command: str, quiet: bool):
    return None if quiet else lambda message: click.echo(f"{command}: {message}", err=True)


@main.command("build-system")
@click.argument("feats_dirs", metavar="FEATS_DIR...", nargs=-1, required=True,
                type=FeatureSource())
@ubm_option(required=True)
@click.option("--channel", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Eigenchannel file (learnt on the cohort speakers only).")
@click.option("--cohort-utt2spk", type=click.Path(dir_okay=False, exists=True,
                                                   path_type=Path), required=True,
              help="The S-norm cohort's utterances and speakers (in FEATS_DIR).")
@click.option("--cohort-utts", type=click.IntRange(min=2), default=240, show_default=True,
              help="Cohort recordings kept, spread over the cohort.")
@click.option("--cohort-enroll-utts", type=click.IntRange(min=1), default=5,
              show_default=True, help="Utterances each cohort model is enrolled on (as many "
                                      "as users enroll).")
@click.option("--frame-step", type=click.IntRange(min=1), default=2, show_default=True,
              help="Keep every N-th frame of the cohort recordings.")
@_calibration_options
@click.option("--relevance", type=Finite(min=0, min_open=True), default=16.0,
              show_default=True, help="MAP relevance (means) of the speakers it enrolls.")
@click.option("--top-c", "c", type=click.IntRange(min=1), default=5, show_default=True,
              help="Top-C scoring: components per frame.")
@click.option("--name", default="custom", show_default=True, help="The system's name.")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help=_META_HELP)
@jobs_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="System file to write (.npz).")
@click.option("--quiet", "-q", is_flag=True, help="No progress notes.")
@writes("output")
def build_system_cmd(feats_dirs, ubm, channel, cohort_utt2spk, cohort_utts, cohort_enroll_utts,
                     frame_step, cal_enroll_map, cal_trials, prior, quality_trials,
                     quality_audio, audio_root, relevance, c, name, meta, executor, output,
                     quiet) -> None:
    """Assemble a recognition system for enroll / verify / identify (--system) from a UBM,
    an eigenchannel subspace and the background feature archives FEATS_DIR...: an S-norm
    cohort, a calibration trained on held-out speakers' trials scored as the product
    path scores them, and optionally a quality calibration."""
    from ..data.textmap import read_kaldi_map
    from ..gmm.eigenchannel import EigenChannel
    from ..gmm.mixture import DiagGMM
    from ..sources import open_features
    from ..system import build_system

    model = DiagGMM.load(ubm)
    system = build_system(
        model, open_features(list(feats_dirs), model, stats_ok=False),
        cohort_utt2spk=read_kaldi_map(cohort_utt2spk),
        channel=None if channel is None else EigenChannel.load(channel, model),
        cohort_utterances=cohort_utts, cohort_enroll_utterances=cohort_enroll_utts,
        frame_step=frame_step, prior=prior, relevance=relevance, c=c, name=name,
        metadata=_meta(meta), executor=executor, log=_log("build-system", quiet),
        **_calibration_inputs(model, cal_enroll_map, cal_trials, quality_trials,
                              quality_audio, audio_root))
    system.save(output)
    click.echo(f"wrote {output}: {system.describe()}")


@main.command("calibrate-system")
@click.argument("system_file", metavar="SYSTEM",
                # a file is an input no output may overwrite; a bundled name is not a file
                callback=lambda ctx, param, value: Path(value) if Path(value).exists()
                else value)
@click.argument("feats_dirs", metavar="FEATS_DIR...", nargs=-1, required=True,
                type=FeatureSource())
@_calibration_options
@jobs_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="System file to write (.npz).")
@click.option("--quiet", "-q", is_flag=True, help="No progress notes.")
@writes("output")
def calibrate_system_cmd(system_file, feats_dirs, cal_enroll_map, cal_trials, prior,
                         quality_trials, quality_audio, audio_root, executor, output,
                         quiet) -> None:
    """Learn a system's calibration (and quality calibration) anew on held-out speakers'
    trials, keeping its UBM, subspace and cohort: its fingerprint, and the stores enrolled
    with it, stay valid. SYSTEM is a system file or a bundled name (wideband, telephone);
    FEATS_DIR... hold the trials' recordings."""
    from ..errors import ParameterError
    from ..sources import open_features
    from ..system import calibrate_system, load_system

    system = load_system(system_file)
    if cal_trials is None:
        raise ParameterError("--cal-trials is needed: the trials the calibration is learnt on")
    system = calibrate_system(
        system, open_features(list(feats_dirs), system.ubm, stats_ok=False), prior=prior,
        executor=executor, log=_log("calibrate-system", quiet),
        **_calibration_inputs(system.ubm, cal_enroll_map, cal_trials, quality_trials,
                              quality_audio, audio_root))
    system.save(output)
    click.echo(f"wrote {output}: {system.describe()}")
