"""``speakergmm diarize``, ``track`` and ``train-diarization``: who spoke when."""

from __future__ import annotations

from pathlib import Path

import click

from ..constants import IDENTIFY_PRIOR
from .app import jobs_option, main, prior_option, quiet_option, store_option, writes
from .speakers import _recognizer


def _band_of(rate: int) -> str:
    return "telephone" if rate <= 8000 else "wideband"


@main.command("train-diarization")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The diarization model to write (.npz).")
@click.option("--system", default="wideband", show_default=True, metavar="NAME|FILE",
              help="Recognition system whose UBM and features the model uses: 'wideband', "
                   "'telephone', or a file of 'speakergmm build-system' (its features must "
                   "keep every frame).")
@click.option("--detector", default=None, metavar="BAND|FILE",
              help="Speech detector: a band's bundled one, or a file of 'speakergmm "
                   "train-sad' [default: the bundled one of the system's band].")
@click.option("--calibrate", "conversations", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A data directory of conversations with their reference in a file rttm "
                   "('speakergmm prepare conversations'), of other speakers than DATA_DIR's, "
                   "on which the clustering threshold is calibrated (repeatable). Without "
                   "it the threshold is a raw PLDA score.")
@click.option("--audio-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Directory that relative wav.scp paths resolve against "
                                 "[default: current directory].")
@click.option("-r", "--factors", type=click.IntRange(min=1), default=100, show_default=True,
              help="i-vector dimension.")
@click.option("-n", "--iterations", type=click.IntRange(min=0), default=6, show_default=True,
              help="i-vector extractor EM iterations.")
@click.option("--lda", type=click.IntRange(min=1), default=50, show_default=True,
              help="LDA dimension before the PLDA.")
@click.option("--seed", type=int, default=0, show_default=True)
@jobs_option
@quiet_option
@writes("output")
def train_diarization_cmd(data_dir, output, system, detector, conversations, audio_root,
                          factors, iterations, lda, seed, executor, quiet) -> None:
    """Train what diarization adds to a recognition system on DATA_DIR's recordings of one
    speaker each: an i-vector extractor and a PLDA back-end on 1.5 s windows of their
    speech, and, with --calibrate, the calibration of the clustering threshold
    (speakergmm.diarization.train_diarizer). 'speakergmm diarize --model' uses it."""
    from ..diarization import train_diarizer
    from ..pretrained import load_speech_detector
    from ..system import load_system

    system = load_system(system)
    detector = load_speech_detector(detector or _band_of(system.config.sample_rate))
    diarizer = train_diarizer(
        system, detector, data_dir, audio_root=audio_root, n_factors=factors,
        n_iterations=iterations, lda=lda, seed=seed, conversations=conversations,
        executor=executor,
        progress=None if quiet else (lambda line: click.echo(f"train-diarization: {line}",
                                                             err=True)))
    diarizer.save(output)
    if not conversations:
        click.echo("train-diarization: not calibrated (no --calibrate): the clustering stops "
                   "at a raw PLDA score of 0, which may suit no data", err=True)
    click.echo(f"wrote {output}")


def _diarization_options(f):
    """What diarize and track share: outputs, speaker limits and the models."""
    options = [
        click.argument("audio", nargs=-1, required=True,
                       type=click.Path(dir_okay=False, exists=True, path_type=Path)),
        click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                     required=True, help="RTTM file to write (one recording per audio file, "
                                         "named by its stem)."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Also write the turns as JSON, with their "
                                        "posteriors or LLRs."),
        click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Also draw a timeline (PNG): a lane per speaker."),
        click.option("--num-speakers", type=click.IntRange(min=1), default=None,
                     help="Exactly this many speakers (voices), when known."),
        click.option("--max-speakers", type=click.IntRange(min=1), default=None,
                     help="At most this many speakers (voices)."),
        click.option("--band", type=click.Choice(["auto", "wideband", "telephone"]),
                     default="auto", show_default=True,
                     help="The bundled diarization models to use: auto takes telephone for "
                          "audio of 8 kHz or less, wideband otherwise."),
        click.option("--model", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     default=None, help="A diarization model of 'speakergmm "
                                        "train-diarization' instead of the bundled ones "
                                        "(with --diarization-system and --detector)."),
        click.option("--diarization-system", "diar_system", default=None,
                     metavar="NAME|FILE", help="With --model: the system it was trained for "
                                               "[default: the band's]."),
        click.option("--detector", default=None, metavar="BAND|FILE",
                     help="With --model: the speech detector it was trained with [default: "
                          "the bundled one of the system's band]."),
        writes("output", "json_path", "plot_path"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class _Diarizers:
    """The diarizer of each recording: the bundled one of its band (or --band), or the
    one --model names, each loaded once."""

    def __init__(self, band, model, system, detector):
        if (system or detector) and model is None:
            raise click.UsageError("--diarization-system and --detector go with --model (the "
                                   "bundled models are chosen by --band)")
        self.band, self.model, self.system, self.detector = band, model, system, detector
        self._loaded = {}

    def __call__(self, path: Path):
        from ..diarization import Diarizer
        from ..frontend.audio import AudioBlocks
        from ..pretrained import load_speech_detector
        from ..system import load_system

        with AudioBlocks(path) as blocks:
            rate = blocks.native_rate
        which = "model" if self.model else (
            self.band if self.band != "auto" else _band_of(rate))
        if which not in self._loaded:
            if self.model is None:
                self._loaded[which] = Diarizer.bundled(which)
            else:
                chosen = load_system(self.system or (
                    self.band if self.band != "auto" else "wideband"))
                self._loaded[which] = Diarizer.load(self.model, chosen, load_speech_detector(
                    self.detector or _band_of(chosen.config.sample_rate)))
        return self._loaded[which]


def _each_recording(audio, run) -> dict:
    """``{stem: run(path)}`` for each audio file, one line for each."""
    from ..errors import DataDirError

    stems = [p.stem for p in audio]
    if len(set(stems)) != len(stems):
        raise DataDirError("two audio files share a name (" + ", ".join(
            sorted({s for s in stems if stems.count(s) > 1})) + "): the RTTM names each "
            "recording by its file's stem")
    results = {}
    for path in audio:
        found = results[path.stem] = run(path)
        click.echo(f"{path}: {', '.join(found.speakers) or 'no speaker'}; "
                   f"{len(found.turns)} turns, "
                   f"{sum(t.duration for t in found.turns):.1f} s of speech of "
                   f"{found.seconds:.1f} s", err=True)
    return results


def _write(results: dict, output, json_path, plot_path) -> None:
    import json

    from .._io import write_text_atomic
    from ..data.rttm import write_rttm
    from ..diarization import plot_timeline

    write_rttm(output, {stem: r.turns for stem, r in results.items()})
    if json_path is not None:
        write_text_atomic(json_path, json.dumps({stem: r.as_dict() for stem, r in
                                                 results.items()}, indent=2) + "\n")
    if plot_path is not None:
        plot_timeline(results, plot_path)
    click.echo(f"wrote {output}")


@main.command("diarize")
@_diarization_options
def diarize_cmd(audio, output, json_path, plot_path, num_speakers, max_speakers, band,
                model, diar_system, detector) -> None:
    """Who spoke when in each AUDIO file: speech detection, i-vectors of 1.5 s windows,
    PLDA, clustering stopped at a calibrated threshold and a Viterbi resegmentation
    (speakergmm.diarization), written as RTTM."""
    diarizer_of = _Diarizers(band, model, diar_system, detector)
    results = _each_recording(audio, lambda path: diarizer_of(path).diarize_file(
        path, num_speakers=num_speakers, max_speakers=max_speakers))
    _write(results, output, json_path, plot_path)


@main.command("track")
@_diarization_options
@store_option
@prior_option(IDENTIFY_PRIOR,
              "Prior probability that a voice is one of the enrolled speakers: a voice is "
              "named when its LLR exceeds log(M (1 - P) / P) for M enrolled, as identify's.")
def track_cmd(audio, output, json_path, plot_path, num_speakers, max_speakers, band, model,
              diar_system, detector, store, prior) -> None:
    """Who among the store's enrolled speakers speaks when in each AUDIO file: the voices
    diarization finds, each identified from all of its speech with the store's system and
    calibration (a voice of nobody enrolled is 'unknown-<label>'), and each turn's own
    calibrated LLR (speakergmm.diarization.track); written as RTTM."""
    from ..diarization import track

    recognizer = _recognizer(None, store, None)
    diarizer_of = _Diarizers(band, model, diar_system, detector)
    results = _each_recording(audio, lambda path: track(
        recognizer, diarizer_of(path), path, prior=prior, num_speakers=num_speakers,
        max_speakers=max_speakers))
    _write(results, output, json_path, plot_path)
