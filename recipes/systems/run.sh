#!/usr/bin/env bash
# The bundled recognition systems (speakergmm/models/wideband.npz and telephone.npz), built
# with speakergmm's own commands on the train half of speechocean762: features, UBM, the
# cohort's statistics, eigenchannel subspace (cohort speakers only), then build-system
# (S-norm cohort, and a calibration trained on held-out calibration speakers' trials scored
# as the product path scores them); then each system's diarization models
# (diarization-<band>.npz). The telephone system is the same speech resampled to 8 kHz by
# its feature config. See speakergmm/models/README.md.
# Usage: recipes/systems/run.sh [--corpus-root DIR] [--work DIR] [--split all|dev|mirror] [--nj N]
#                               [--augment "KIND ..."] [--quality "KIND ..."]
#   --split all: every train speaker is background (what ships);
#   --split dev: only the dev protocol's background speakers, so that the dev protocol's
#                evaluation speakers stay unseen (tests/benchmarks/bench_product.py);
#   --split mirror: the dev protocol's mirror image (its evaluation speakers are the
#                background), to check a setting on a second set of unseen speakers.
#   --augment:   multi-condition training: a degraded copy of every background recording
#                per kind (speakergmm augment --kind) beside the clean ones, for the UBM,
#                the eigenchannel subspace and the calibration's test side ("" for clean
#                only); tests/benchmarks/bench_conditions.py measures what it buys.
#   --quality:   the kinds of degraded copies of the calibration speakers' test recordings
#                the quality calibration is learnt on ("" for none).
set -euo pipefail

# --- settings ---------------------------------------------------------------------------
corpus_root="${SPEECHOCEAN762_ROOT:-}"  # holds train/ and WAVE/
work="exp/systems"
split=all
nj=2
bands="wideband telephone"
components=256
iterations=10
relevance=8              # MAP relevance (means), of the cohort and of the users' speakers
channel_factors=60       # eigenchannel rank (chosen on the speechocean762 dev protocol)
cohort_utts=240          # S-norm cohort recordings, every frame_step-th frame kept
frame_step=2
prior=0.01               # target prior the calibration is trained for
augment=""               # degradations to train on, e.g. "noise babble reverb mulaw ogg"
quality="noise babble reverb mulaw ogg excerpt"  # what the quality calibration learns from
diar_lda=50              # LDA dimension of the diarization PLDA (at most the speakers - 1)
# -------------------------------------------------------------------------------------

. "$(dirname "$0")/../parse_options.sh"
conf="$(dirname "$0")/conf"
if [ -z "$corpus_root" ]; then
  corpus_root="$work/corpus/speechocean762"
  speakergmm download speechocean762 "$work/corpus"
fi
case "$split" in
  all) prepare_flags=(--background-only) ;;
  dev) prepare_flags=() ;;
  mirror) prepare_flags=(--mirror) ;;
  *) echo "$(basename "$0"): --split must be all, dev or mirror" >&2; exit 2 ;;
esac
out="$work/$split"
mkdir -p "$out"
speakergmm prepare speechocean762 "$corpus_root" "$out/data" "${prepare_flags[@]}" >/dev/null
data="$out/data"
train="$data/ubm"
cohort="$data/cohort/utt2spk"
cal_trials="$data/cal_trials"
if [ -n "$augment" ]; then
  kinds=()
  for kind in $augment; do kinds+=(--kind "$kind"); done
  speakergmm augment "$data/ubm" "$data/ubm_mc" "${kinds[@]}" --include-original \
    --audio-root "$corpus_root" --seed 0 -q
  train="$data/ubm_mc"
  # the cohort speakers' degraded copies too (the channel is learnt on them), and each
  # calibration trial also against every degraded copy of its test recording
  awk 'NR == FNR { keep[$2] = 1; next } $2 in keep' "$cohort" "$train/utt2spk" \
    > "$data/cohort_mc_utt2spk"
  cohort="$data/cohort_mc_utt2spk"
  awk -v kinds="$augment" '{ print; n = split(kinds, k, " ")
    for (i = 1; i <= n; i++) print $1, $2 "-" k[i], $3 }' "$data/cal_trials" \
    > "$data/cal_trials_mc"
  cal_trials="$data/cal_trials_mc"
fi
quality_flags=()
if [ -n "$quality" ]; then
  # the calibration speakers' test recordings, degraded; each calibration trial is also
  # scored against every degraded copy of its test recording
  mkdir -p "$data/cal_test"
  awk 'NR == FNR { keep[$2] = 1; next } $1 in keep' "$data/cal_trials" "$data/ubm/wav.scp" \
    > "$data/cal_test/wav.scp"
  awk 'NR == FNR { keep[$2] = 1; next } $1 in keep' "$data/cal_trials" "$data/ubm/utt2spk" \
    > "$data/cal_test/utt2spk"
  kinds=()
  for kind in $quality; do kinds+=(--kind "$kind"); done
  # (babble down to 5 dB: the SNR estimate reads babble as cleaner than it is, and the
  # calibration learns what it does to the scores only from copies that are noisy enough)
  speakergmm augment "$data/cal_test" "$data/cal_quality" "${kinds[@]}" --snr-babble 5 20 \
    --audio-root "$corpus_root" --seed 1 -q
  q=""
  if [ -n "$augment" ]; then
    # the multi-condition copies of the same recordings already have the ids <utt>-<kind>:
    # these become <utt>-q<kind>
    q=q
    for f in wav.scp utt2spk utt2aug; do
      sed -E -i 's/^([^ ]+)-([A-Za-z0-9]+) /\1-q\2 /' "$data/cal_quality/$f"
    done
    awk '{ u[$2] = u[$2] " " $1 } END { for (s in u) print s u[s] }' \
      "$data/cal_quality/utt2spk" | sort > "$data/cal_quality/spk2utt"
  fi
  awk -v kinds="$quality" -v q="$q" '{ print; n = split(kinds, k, " ")
    for (i = 1; i <= n; i++) print $1, $2 "-" q k[i], $3 }' "$data/cal_trials" \
    > "$data/quality_trials"
  quality_flags=(--quality-trials "$data/quality_trials" --quality-audio "$data/cal_test"
                 --quality-audio "$data/cal_quality" --audio-root "$corpus_root")
fi
licence="licence=speechocean762: CC BY 4.0, Zhang et al., Interspeech 2021, OpenSLR 101"
for band in $bands; do
  echo "== $band ($split)"
  dir="$out/$band"
  speakergmm extract "$train" "$dir/feats" --audio-root "$corpus_root" \
    --config "$conf/$band.json" -j "$nj"
  speakergmm train-ubm "$dir/feats" -c "$components" -n "$iterations" --seed 0 -j "$nj" \
    --meta "corpus=speechocean762 train, $split background speakers" --meta "$licence" \
    -o "$dir/ubm.npz"
  speakergmm stats "$dir/feats" --ubm "$dir/ubm.npz" --subset "$cohort" \
    -j "$nj" -q -o "$dir/stats"
  speakergmm train-channel "$dir/stats" --ubm "$dir/ubm.npz" -r "$channel_factors" \
    --relevance "$relevance" -j "$nj" -o "$dir/channel.npz"
  quality_feats=()
  if [ -n "$quality" ]; then
    speakergmm extract "$data/cal_quality" "$dir/quality_feats" --config "$conf/$band.json" \
      -j "$nj"
    quality_feats=("$dir/quality_feats")
  fi
  speakergmm build-system "$dir/feats" "${quality_feats[@]}" --ubm "$dir/ubm.npz" \
    --channel "$dir/channel.npz" "${quality_flags[@]}" \
    --cohort-utt2spk "$data/cohort/utt2spk" --cohort-utts "$cohort_utts" \
    --frame-step "$frame_step" --cal-enroll-map "$data/cal_enroll_map" \
    --cal-trials "$cal_trials" --prior "$prior" --relevance "$relevance" \
    --name "$band" --meta "corpus=speechocean762 train, $split background speakers" \
    --meta "$licence" -j "$nj" -o "$out/$band.npz"
done
# diarization models of each band (speakergmm diarize / track): an i-vector extractor and a
# PLDA of 1.5 s windows of the cohort speakers' speech, the clustering threshold calibrated
# on simulated conversations of the calibration speakers, whom those models never saw
mkdir -p "$data/cal_speakers"
awk 'NR == FNR { c[$1] = 1; next } !($1 in c)' "$data/cohort/utt2spk" "$data/ubm/utt2spk" \
  > "$data/cal_speakers/utt2spk"
awk 'NR == FNR { k[$1] = 1; next } $1 in k' "$data/cal_speakers/utt2spk" "$data/ubm/wav.scp" \
  > "$data/cal_speakers/wav.scp"
speakergmm prepare conversations "$data/cal_speakers" "$out/cal_conversations" \
  --audio-root "$corpus_root" --count 20 --seed 3 >/dev/null
speakers=$(cut -d' ' -f2 "$data/cohort/utt2spk" | sort -u | wc -l)
lda=$(( speakers - 1 < diar_lda ? speakers - 1 : diar_lda ))
for band in $bands; do
  speakergmm train-diarization "$data/cohort" --system "$out/$band.npz" --lda "$lda" \
    --calibrate "$out/cal_conversations" --audio-root "$corpus_root" -j "$nj" -q \
    -o "$out/diarization-$band.npz"
done
