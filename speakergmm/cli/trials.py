"""``speakergmm score``, ``calibrate``, ``apply-calibration`` and ``evaluate``: trial lists
from archives to reports."""

from __future__ import annotations

from pathlib import Path

import click

from ..constants import (
    DEFAULT_C,
    DIARIZATION_COLLAR,
    MODEL_MEMORY,
    NORM_METHODS,
    VECTOR_BACKENDS,
)
from .app import (
    FeatureSource,
    channel_option,
    jobs_option,
    main,
    map_options,
    method_option,
    prior_option,
    progress_bar,
    quiet_option,
    ubm_option,
    writes,
)


@main.command("score")
@click.argument("trials_file", metavar="TRIALS", type=click.Path(dir_okay=False, exists=True,
                                                                  path_type=Path))
@click.option("--enroll", "enroll_path", required=True, multiple=True, type=FeatureSource(),
              help="Enrollment features (archive), statistics (speakergmm stats) or data "
                   "directory; repeat it to enroll from several.")
@click.option("--enroll-map", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="model -> utterances [default: one model per speaker].")
@click.option("--test", "test_path", required=True, multiple=True, type=FeatureSource(),
              help="Test features (archive) or data directory; repeat it to test from "
                   "several.")
@ubm_option()
@click.option("--audio-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="For data directories given instead of archives.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Scores file: '<model> <test> <score>' per trial.")
@click.option("--raw-output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the scores before normalisation and calibration (the same "
                   "pass: nothing is scored twice).")
@method_option
@click.option("--top-c", "c", type=click.IntRange(min=1), default=None,
              help=f"Gaussians per frame for top-C scoring [default: {DEFAULT_C}, or K for a "
                   "UBM of fewer components].")
@click.option("-c", "c_deprecated", type=click.IntRange(min=1), default=None, hidden=True,
              help="Deprecated spelling of --top-c.")
@map_options
@click.option("--norm", type=click.Choice(NORM_METHODS), default="none",
              help="Score normalisation against --cohort.")
@click.option("--cohort", "cohort_path", type=FeatureSource(),
              default=None, help="Impostor cohort: features (archive with utt2spk) or "
                                 "statistics (speakergmm stats) of its utterances.")
@click.option("--cohort-utt2spk", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The cohort's utterances and speakers, when they are part of "
                                 "the --cohort archive (e.g. some of the UBM's speakers) "
                                 "[default: the archive's utt2spk].")
@click.option("--cohort-utts", type=click.IntRange(min=1), default=500,
              help="At most this many cohort utterances.")
@click.option("--cohort-enroll-utts", type=click.IntRange(min=1), default=None,
              help="Enroll each cohort model on at most this many of its speaker's "
                   "utterances (spread evenly), to match the target models' enrollment "
                   "[default: all].")
@click.option("--top-n", type=click.IntRange(min=1), default=None,
              help="Cohort size for adaptive S-norm (asnorm only).")
@click.option("--calibration", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Apply a calibration (speakergmm calibrate) to the scores.")
@channel_option("Remove session variability from every utterance (enroll, test, cohort) "
                "with this eigenchannel file (speakergmm train-channel).")
@click.option("--model-memory", type=click.IntRange(min=1), default=MODEL_MEMORY >> 20,
              show_default=True, metavar="MIB",
              help="Adapted enrollment models each process may hold, in MiB; beyond it each "
                   "test utterance adapts its trials' models from their statistics.")
@click.option("--backend", type=click.Choice(("gmm", *VECTOR_BACKENDS)), default="gmm",
              show_default=True,
              help="gmm: GMM-UBM LLRs from features or statistics. plda, cosine: i-vectors "
                   "(--enroll, --test, --cohort are vector archives from extract-ivectors) "
                   "through the transforms of --plda.")
@click.option("--plda", "plda_path", type=click.Path(dir_okay=False, exists=True,
                                                     path_type=Path),
              default=None, help="Vector back-end file (speakergmm train-plda), for "
                                 "--backend plda or cosine.")
@jobs_option
@quiet_option
@click.pass_context
@writes("output", "raw_output")
def score_cmd(ctx, trials_file, enroll_path, enroll_map, test_path, ubm, audio_root, output,
              raw_output, method, c, c_deprecated, relevance, adapt, norm, cohort_path,
              cohort_utt2spk, cohort_utts, cohort_enroll_utts, top_n, channel, calibration,
              model_memory, backend, plda_path, executor, quiet) -> None:
    """Score a trial list (Kaldi or VoxCeleb format) with models enrolled from archives."""
    from ..batch import score_from_paths, score_vector_trials
    from ..data.scores import write_scores
    from ..errors import SpeakerGMMError

    if c_deprecated is not None:
        click.echo("speakergmm: note: -c is deprecated for 'score'; write --top-c", err=True)
        c = c_deprecated
    if method != "topc" and c is not None:
        raise click.UsageError(f"--top-c applies to --method topc, not to --method {method}")
    if norm == "asnorm" and top_n is None:
        raise click.UsageError("--norm asnorm needs --top-n N, the number of highest cohort "
                               "scores to keep (e.g. 200); --norm snorm takes the whole cohort")
    if norm != "asnorm" and top_n is not None:
        raise click.UsageError(f"--top-n applies to --norm asnorm, not to --norm {norm}")
    if backend != "gmm":
        given = {p.name: max(p.opts, key=len) for p in ctx.command.params
                 if ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE}
        gmm_only = [given[name] for name in _GMM_ONLY if name in given]
        if gmm_only or plda_path is None or len(enroll_path) > 1 or len(test_path) > 1:
            raise SpeakerGMMError(
                f"--backend {backend} scores vector archives through --plda FILE (speakergmm "
                f"train-plda)" + (f"; {', '.join(gmm_only)} only apply to --backend gmm"
                                  if gmm_only else "")
                + ("; give one --enroll and one --test archive"
                   if len(enroll_path) > 1 or len(test_path) > 1 else ""))
        trials, scores, raw = score_vector_trials(
            trials_file, enroll=enroll_path[0], test=test_path[0], backend=plda_path,
            kind=backend, enroll_map=enroll_map, norm=norm, cohort=cohort_path,
            cohort_utt2spk=cohort_utt2spk, cohort_utts=cohort_utts, top_n=top_n,
            calibration=calibration, return_raw=True)
    else:
        if plda_path is not None:
            raise SpeakerGMMError("--plda is the back-end of --backend plda or cosine")
        with progress_bar("score", quiet) as progress:
            trials, scores, raw = score_from_paths(
                trials_file, enroll=enroll_path, test=test_path, ubm=ubm,
                enroll_map=enroll_map, cohort=cohort_path, cohort_utt2spk=cohort_utt2spk,
                channel=channel, audio_root=audio_root, method=method, c=c,
                relevance=relevance, adapt=adapt, norm=norm, top_n=top_n,
                cohort_utts=cohort_utts, cohort_enroll_utts=cohort_enroll_utts,
                calibration=calibration, model_memory=model_memory << 20, executor=executor,
                return_raw=True, progress=progress)
    if raw_output is not None:
        write_scores(raw_output, trials.enroll, trials.test, raw)
    write_scores(output, trials.enroll, trials.test, scores)
    click.echo(f"wrote {len(scores)} scores to {output}", err=True)


# Options of score that only the GMM back-end reads.
_GMM_ONLY = ("ubm", "audio_root", "method", "c", "c_deprecated", "relevance", "adapt",
             "cohort_enroll_utts", "channel", "model_memory", "jobs", "scheduler",
             "scheduler_timeout")


@main.command("calibrate")
@click.argument("scores_file", metavar="SCORES", type=click.Path(dir_okay=False, exists=True,
                                                                  path_type=Path))
@click.option("--trials", "trials_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trial key (target/nontarget) for the scores.")
@prior_option(0.01, "Target prior the calibration is optimised for.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Calibration file to write (JSON).")
@writes("output")
def calibrate_cmd(scores_file, trials_file, prior, output) -> None:
    """Train a linear calibration (scores -> log-likelihood ratios) on development scores."""
    from ..backend.calibration import Calibration
    from ..data.scores import labelled_scores
    from ..data.trials import read_trials
    from ..eval.metrics import cllr

    tar, non = labelled_scores(scores_file, read_trials(trials_file))
    cal = Calibration().fit(tar, non, prior=prior, source=scores_file)
    cal.save(output)
    click.echo(f"wrote {output}: llr = {cal.scale_:.4f} * score + {cal.offset_:.4f}; Cllr "
               f"{cllr(tar, non):.3f} -> {cllr(cal.transform(tar), cal.transform(non)):.3f} bits")


@main.command("fuse")
@click.argument("score_files", metavar="SCORES...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--trials", "trials_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trial key (target/nontarget) of the development scores.")
@prior_option(0.01, "Target prior the fusion is optimised for.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Fusion file to write (JSON).")
@writes("output")
def fuse_cmd(score_files, trials_file, prior, output) -> None:
    """Train a linear logistic fusion (BOSARIS style, prior-weighted) of several systems'
    development scores on the same trials into one log-likelihood ratio; apply it with
    'speakergmm apply-calibration FUSION SCORES...'."""
    from ..backend.calibration import Fusion
    from ..data.scores import aligned_scores
    from ..data.trials import read_trials
    from ..eval.metrics import cllr

    trials = read_trials(trials_file)
    _, _, S = aligned_scores(score_files, trials)
    tar, non = S[trials.is_target], S[~trials.is_target]
    fusion = Fusion().fit(tar, non, prior=prior, systems=[str(p) for p in score_files],
                          source=trials_file)
    fusion.save(output)
    singles = ", ".join(f"{Path(p).name} {cllr(tar[:, i], non[:, i]):.3f}"
                        for i, p in enumerate(score_files))
    click.echo(f"wrote {output}: weights {', '.join(f'{w:.4f}' for w in fusion.weights_)}, "
               f"offset {fusion.offset_:.4f}; Cllr {singles} -> fused "
               f"{cllr(fusion.transform(tar), fusion.transform(non)):.3f} bits")


@main.command("apply-calibration")
@click.argument("calibration", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("score_files", metavar="SCORES...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Calibrated scores (log-likelihood ratios), the trials of the first file "
                   "in its order.")
@writes("output")
def apply_calibration_cmd(calibration, score_files, output) -> None:
    """Map scores to log-likelihood ratios with CALIBRATION (from 'speakergmm calibrate':
    one score file) or a fusion (from 'speakergmm fuse': its systems' score files, in the
    order it was trained on), without scoring again."""
    from ..backend.calibration import Fusion, load_score_map
    from ..data.scores import aligned_scores, write_scores
    from ..errors import SpeakerGMMError

    mapping = load_score_map(calibration)
    wanted = len(mapping.weights_) if isinstance(mapping, Fusion) else 1
    if len(score_files) != wanted:
        raise SpeakerGMMError(f"{calibration} maps {wanted} system(s)' scores, "
                              f"{len(score_files)} score file(s) given")
    enroll, test, S = aligned_scores(score_files)
    write_scores(output, enroll, test, mapping.transform(S if wanted > 1 else S[:, 0]))
    click.echo(f"wrote {len(enroll)} calibrated scores to {output}", err=True)


@main.command("evaluate-diarization")
@click.option("-r", "--ref", "refs", multiple=True, required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Reference RTTM file(s); repeat, or give one with every recording.")
@click.option("-s", "--hyp", "hyps", multiple=True, required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Hypothesis RTTM file(s) (speakergmm diarize, or any system's).")
@click.option("--collar", type=click.FloatRange(min=0), default=DIARIZATION_COLLAR,
              show_default=True,
              help="Seconds not scored on each side of every reference boundary (md-eval's "
                   "-c; pyannote.metrics' collar is twice it).")
@click.option("--skip-overlap", is_flag=True,
              help="Do not score where reference speakers overlap (md-eval's -1).")
@click.option("--by-name", is_flag=True,
              help="Map reference speakers to hypothesis speakers of the same name (to score "
                   "'speakergmm track' against a reference of the enrolled ids), not by the "
                   "best overlap; also reports the share of speech attributed right.")
@click.option("--uem", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="NIST UEM file: the stretches of each recording to score "
                                 "[default: from the first turn to the last].")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report directory (report.json, report.md, report.html, der.png).")
@writes("output")
def evaluate_diarization_cmd(refs, hyps, collar, skip_overlap, by_name, uem,
                             output) -> None:
    """Diarization error rate (missed speech, false alarm, speaker confusion) and Jaccard
    error rate of hypothesis RTTMs against reference RTTMs, per recording and pooled, with
    and without the collar, overlap scored and not."""
    from ..data.rttm import read_rttm, read_uem
    from ..errors import DataDirError
    from ..eval.diarization import diarization_report, scoring_label, write_diarization_report

    def turns(paths):
        out = {}
        for path in paths:
            for rec, t in read_rttm(path).items():
                if rec in out:
                    raise DataDirError(f"{path}: recording {rec} is in another of the files "
                                       "too; give each recording's turns in one file")
                out[rec] = t
        return out

    report = diarization_report(turns(refs), turns(hyps), collar=collar,
                                skip_overlap=skip_overlap, by_name=by_name,
                                uem=None if uem is None else read_uem(uem))
    files = write_diarization_report(report, output)
    for c in report["conditions"]:
        click.echo(f"{scoring_label(c['collar'], c['skip_overlap'])}: "
                   f"DER {100 * c['der']:.2f}% (missed {100 * c['missed_rate']:.2f}%, "
                   f"false alarm {100 * c['false_alarm_rate']:.2f}%, confusion "
                   f"{100 * c['confusion_rate']:.2f}%), JER {100 * c['jer']:.2f}%"
                   + (f", attributed right {100 * c['attributed']:.2f}%" if by_name else ""))
    click.echo(f"report: {files['html']}")


@main.command("evaluate")
@click.argument("score_files", metavar="SCORES...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--trials", "trials_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trial key (Kaldi target/nontarget or VoxCeleb 1/0).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report directory (report.json, report.md, report.html, det.png, hist.png).")
@writes("output")
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
