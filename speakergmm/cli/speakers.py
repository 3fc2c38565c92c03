"""``speakergmm enroll``, ``verify``, ``identify`` and ``speakers``: the product path, one
recording at a time, over a speaker store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..constants import DEFAULT_THRESHOLD, IDENTIFY_PRIOR
from .app import (
    Finite,
    channel_option,
    main,
    map_options,
    method_option,
    prior_option,
    progress_bar,
    quiet_option,
    store_option,
    ubm_option,
)

# The product path's --ubm: a bare UBM instead of a system.
_UBM_HELP = ("A bare UBM file to score with instead of a system: no S-norm cohort, no "
             "calibration but the store's own; the store remembers it (and --channel) for "
             "later commands [default: the system or UBM the store records; a new store: "
             "--system wideband]. Not with --system.")
_CHANNEL_HELP = ("Remove session variability with this eigenchannel file (speakergmm "
                 "train-channel, for the same UBM); a store's speakers are scored with the "
                 "compensation they were enrolled with.")


def _recognizer(ubm: Path | None, store: Path | None, system: str | None, **kw):
    from ..recognizer import Recognizer

    rec = Recognizer(ubm, store, system=system, **kw)
    # closed however the command ends, or SQLite's -wal and -shm files stay beside the store
    click.get_current_context().call_on_close(rec.store.close)
    return rec


def system_option(f):
    return click.option(
        "--system", default=None, metavar="NAME|FILE",
        help="Recognition system: 'wideband' (16 kHz audio), 'telephone' (8 kHz), or a "
             "file from 'speakergmm build-system' [default: the store's; a new store: "
             "wideband, or telephone when its first enrollment is 8 kHz audio]. Not with "
             "--ubm.")(f)


@main.command("enroll")
@click.argument("speaker")
@click.argument("audio", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@ubm_option(help_=_UBM_HELP)
@store_option
@click.option("--append", is_flag=True, help="Add the audio to an enrolled speaker.")
@click.option("--replace", is_flag=True,
              help="Re-enroll a speaker from scratch (its earlier recordings are dropped).")
@map_options(relevance=None, relevance_help=" [default: the system's; 16 with --ubm]")
@channel_option(_CHANNEL_HELP)
@system_option
@quiet_option
def enroll_cmd(speaker, audio, ubm, store, append, replace, relevance, adapt, channel,
               system, quiet) -> None:
    """Enroll SPEAKER from one or more recordings."""
    if append and replace:  # (one would silently win, and --replace drops recordings)
        raise click.UsageError("--append keeps the speaker's recordings and --replace drops "
                               "them: give one, not both")
    rec = _recognizer(ubm, store, system, relevance=relevance, adapt=adapt, channel=channel)
    with progress_bar("enroll", quiet or len(audio) < 2) as progress:
        info = rec.enroll(speaker, audio, mode="append" if append else
                          "replace" if replace else "new", progress=progress)
    click.echo(f"enrolled {info.id}: {info.utterances} recording(s), {info.seconds:.1f} s of "
               f"speech (store {rec.store.path})")


@main.command("verify")
@click.argument("speaker")
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@ubm_option(help_=_UBM_HELP)
@store_option
@click.option("--threshold", type=Finite(), default=None,
              help="Accept when the calibrated log-likelihood ratio reaches this [default: "
                   "the Bayes decision at --prior]; in a store not calibrated, when the raw "
                   f"score does [default: {DEFAULT_THRESHOLD:g}].")
@prior_option(0.5, "Prior probability that the claim is true (calibrated stores: the "
                   "posterior and the default decision use it).")
@method_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@channel_option(_CHANNEL_HELP)
@system_option
def verify_cmd(speaker, audio, ubm, store, threshold, prior, method, as_json,
               channel, system) -> None:
    """Is AUDIO spoken by SPEAKER? Exit status 0 accept, 1 reject, 2 error."""
    import json

    result = _recognizer(ubm, store, system, channel=channel).verify(speaker, audio, method=method,
                                                             threshold=threshold,
                                                             prior=prior)
    click.echo(json.dumps(result.to_dict()) if as_json else str(result))
    sys.exit(0 if result.accepted else 1)


@main.command("identify")
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@ubm_option(help_=_UBM_HELP)
@store_option
@click.option("--top", type=click.IntRange(min=1), default=5, help="Speakers to list.")
@click.option("--threshold", type=Finite(), default=None,
              help="Name the best speaker only if its calibrated LLR (raw score, in a store "
                   "not calibrated) reaches this [default: calibrated stores name the most "
                   "probable of the enrolled speakers and 'unknown'; others the best].")
@prior_option(IDENTIFY_PRIOR,
              "Prior probability that the voice is one of the enrolled speakers (calibrated "
              "stores): a speaker is named when its LLR exceeds log(M (1 - P) / P) for M "
              "enrolled. The default names the right speaker for ~91% of tests when every "
              "voice is enrolled, and ~10% of strangers; lower it when strangers are common.")
@method_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@channel_option(_CHANNEL_HELP)
@system_option
def identify_cmd(audio, ubm, store, top, threshold, prior, method, as_json, channel,
                 system) -> None:
    """Who is speaking in AUDIO? Ranks the enrolled speakers. Exit status 0 when a speaker
    is named, 1 for "unknown", 2 on error."""
    import json

    result = _recognizer(ubm, store, system, channel=channel).identify(audio, top=top,
                                                               threshold=threshold,
                                                               prior=prior, method=method)
    click.echo(json.dumps(result.to_dict()) if as_json else str(result))
    sys.exit(0 if result.speaker is not None else 1)


@main.group("speakers", invoke_without_command=True)
@store_option
@click.pass_context
def speakers_cmd(ctx, store) -> None:
    """List, show, remove enrolled speakers, or calibrate the store (default: list).

    --store goes before or after the subcommand: 'speakers list --store S' and 'speakers
    --store S list' are the same."""
    ctx.obj["store_path"] = store
    if ctx.invoked_subcommand is None:
        ctx.invoke(speakers_list)


def _store(store: Path | None):
    """The store of a ``speakers`` subcommand: its own --store, else the group's (one of
    them, or both naming the same file), opened once and closed when the command ends."""
    from ..store import SpeakerStore

    ctx = click.get_current_context()
    group = ctx.obj.get("store_path")
    if store is not None and group is not None and Path(store) != Path(group):
        raise click.UsageError(f"two stores given: --store {group} before "
                               f"'{ctx.info_name}' and --store {store} after it; give one")
    opened = SpeakerStore(store if store is not None else group)
    ctx.call_on_close(opened.close)
    return opened


@speakers_cmd.command("list")
@store_option
def speakers_list(store=None) -> None:
    """List enrolled speakers, the store's system and the calibration in force."""
    from ..store import describe_store

    click.echo(describe_store(_store(store)))


@speakers_cmd.command("show")
@click.argument("speaker")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def speakers_show(speaker, store, as_json) -> None:
    """Show one enrolled speaker."""
    import dataclasses
    import json

    info = dataclasses.asdict(_store(store).info(speaker))
    if as_json:
        click.echo(json.dumps(info))
    else:
        for key, value in info.items():
            click.echo(f"{key}: {_plain_value(value)}")


def _plain_value(value) -> str:
    """A record field as a person reads it: a list or tuple as comma-separated items (not
    Python's repr)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


@speakers_cmd.command("calibrate")
@store_option
@prior_option(0.01, "Target prior the calibration is optimised for.")
def speakers_calibrate(store, prior) -> None:
    """Learn the store's calibration from its own enrollment recordings (each scored, as
    it was enrolled, against its speaker without it and against other speakers); verify
    then reports calibrated log-likelihood ratios."""
    from ..eval.metrics import cllr

    store = _store(store)
    cal = store.calibrate(prior=prior)
    tar, non, speakers = store.calibration_trials()
    click.echo(f"calibrated {store.path}: llr = {cal.scale_:.4f} * score + {cal.offset_:.4f} "
               f"from {tar.size} target and {non.size} non-target trials of {speakers} "
               f"speakers; Cllr on them {cllr(tar, non):.3f} -> "
               f"{cllr(cal.transform(tar), cal.transform(non)):.3f} bits")


@speakers_cmd.command("remove")
@click.argument("speaker")
@store_option
def speakers_remove(speaker, store) -> None:
    """Remove an enrolled speaker (and its self-calibration trials; a calibration the
    store learnt is learnt again without them)."""
    store = _store(store)
    had = store.calibration() is not None
    cal = store.remove(speaker)
    click.echo(f"removed {speaker}")
    if cal is not None:
        click.echo(f"the store's calibration was learnt again without its trials: llr = "
                   f"{cal.scale_:.4f} * score + {cal.offset_:.4f}, from {cal.n_target_} target "
                   f"and {cal.n_nontarget_} non-target trials")
    elif had:
        click.echo("the store's calibration was dropped: too few trials are left to learn it "
                   "again; the system's calibration is in force ('speakergmm speakers list')")
