"""``speakergmm validate-data-dir``, ``speakergmm extract`` and ``speakergmm augment``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..constants import FEATURE_PRESETS
from .app import Finite, jobs_option, main, quiet_option, writes

# frontend.augment's KINDS (tests/frontend/test_augment.py checks it): importing that module
# here would add 0.1 s to the start of every command.
AUGMENT_KINDS = ("noise", "babble", "reverb", "mulaw", "alaw", "ogg", "mp3", "level",
                 "excerpt")


@main.command("validate-data-dir")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--audio-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory that relative wav.scp paths resolve against "
                   "[default: current directory].")
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
              help="Directory that relative wav.scp paths resolve against "
                   "[default: current directory].")
@jobs_option
@click.option("--config", "config_spec", default=None, metavar="JSON|PRESET",
              help=f"Feature config: a JSON file, or a preset name "
                   f"({', '.join(FEATURE_PRESETS)}: 20 MFCC + delta + delta-delta, energy "
                   f"VAD, CMVN, for 16 or 8 kHz audio) [default: {FEATURE_PRESETS[0]}]. The "
                   "bundled systems of the same names (--system) use their own config, "
                   "24 MFCC + delta, no VAD, mean normalisation (recipes/speechocean762/"
                   "conf/features.json): features for them are made by the system itself.")
@click.option("--format", "format_", type=click.Choice(["speakergmm", "kaldi"]),
              default="speakergmm", show_default=True,
              help="speakergmm's archive, or a Kaldi data directory (binary ark parts and a "
                   "feats.scp with absolute paths, which Kaldi's tools and speakergmm read; "
                   "speakergmm reads it with the extra [kaldi]).")
@click.option("--skip-bad", is_flag=True,
              help="Exit 0 even if some utterances failed (they are still listed).")
@quiet_option
@writes("feats_dir")
def extract_cmd(data_dir: Path, feats_dir: Path, audio_root: Path | None, executor,
                config_spec: str | None, format_: str, skip_bad: bool, quiet: bool) -> None:
    """Extract features of every utterance of DATA_DIR into the archive FEATS_DIR.

    Resumable: re-running skips finished utterances. Failed utterances are listed in
    FEATS_DIR/failed; the exit status is 1 if any failed, unless --skip-bad.
    """
    from ..data.datadir import read_data_dir
    from ..frontend.archive import extract_archive
    from ..frontend.config import FeatureConfig

    config = FeatureConfig.resolve(config_spec)
    data = read_data_dir(data_dir)
    with click.progressbar(length=len(data.utt2spk), label="extract", file=sys.stderr,
                           hidden=quiet or not sys.stderr.isatty()) as bar:
        summary = extract_archive(data, feats_dir, config=config, audio_root=audio_root,
                                  executor=executor, progress=bar.update, format=format_)
    click.echo(str(summary))
    if summary.failed:
        click.echo(f"{len(summary.failed)} utterance(s) failed; see {feats_dir / 'failed'}",
                   err=True)
        if not skip_bad:
            sys.exit(1)



@main.command("augment")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--kind", "kinds", multiple=True, required=True,
              type=click.Choice(AUGMENT_KINDS),
              help="A degraded copy of every utterance of this kind; repeat for several "
                   "(noise: stationary noise, 0-15 dB SNR; babble: 3-7 other speakers, "
                   "13-20 dB (--snr-noise, --snr-babble); reverb: a simulated room, RT60 "
                   "0.2-0.9 s, needs the extra [rooms]; mulaw, alaw: G.711 telephone; ogg, "
                   "mp3: low bit rate; level: gain -20..+6 dB and a DC offset; excerpt: "
                   "0.8-3.5 s of the speech).")
@click.option("--noise-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="A data directory of noise recordings for --kind noise "
                                 "(e.g. MUSAN's noise part) [default: synthetic coloured "
                                 "noise].")
@click.option("--snr-noise", type=(Finite(), Finite()), default=(0.0, 15.0),
              show_default=True, metavar="LO HI",
              help="SNRs (dB) drawn for --kind noise.")
@click.option("--snr-babble", type=(Finite(), Finite()), default=(13.0, 20.0),
              show_default=True, metavar="LO HI",
              help="SNRs (dB) drawn for --kind babble.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The same seed makes the same copies, bit for bit.")
@click.option("--audio-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Directory that relative wav.scp paths resolve against "
                                 "[default: current directory].")
@click.option("--include-original", is_flag=True,
              help="Also list DATA_DIR's own utterances in OUT_DIR, unchanged (Kaldi's "
                   "--include-original-data): clean and degraded in one data directory.")
@quiet_option
@writes("out_dir")
def augment_cmd(data_dir: Path, out_dir: Path, kinds, noise_dir, snr_noise, snr_babble, seed,
                audio_root, include_original, quiet) -> None:
    """Write degraded copies of every utterance of DATA_DIR into the data directory
    OUT_DIR (FLAC files, utterance ids with Kaldi's suffixes such as -noise, the same
    speakers; OUT_DIR/utt2aug says what was drawn for each copy), for multi-condition
    training: extract it as any data directory."""
    from ..data.datadir import read_data_dir
    from ..errors import ParameterError
    from ..frontend.augment import AugmentConfig, augment_data_dir

    for name, (lo, hi) in (("--snr-noise", snr_noise), ("--snr-babble", snr_babble)):
        if lo > hi:
            raise ParameterError(f"{name} {lo:g} {hi:g}: the first is the lowest SNR, the "
                                 f"second the highest; give {name} {hi:g} {lo:g}")
    data = read_data_dir(data_dir)
    with click.progressbar(length=len(data.utt2spk) * len(kinds), label="augment",
                           file=sys.stderr, hidden=quiet or not sys.stderr.isatty()) as bar:
        result = augment_data_dir(data, out_dir, kinds=kinds, noise_dir=noise_dir, seed=seed,
                                  config=AugmentConfig(snr_noise=tuple(snr_noise),
                                                       snr_babble=tuple(snr_babble)),
                                  audio_root=audio_root, include_original=include_original,
                                  progress=bar.update)
    original = f" and the {len(data.utt2spk)} originals" if include_original else ""
    click.echo(f"wrote {out_dir}: {len(result.utt2spk)} utterances "
               f"({len(data.utt2spk)} x {len(kinds)} kinds{original})")
