#!/usr/bin/env bash
# GMM-UBM speaker verification on LibriSpeech: corpus (train-clean-100, test-clean and, for
# calibration, dev-clean from OpenSLR 12, MD5-checked), data directories, features, UBM,
# enrollment and scoring, evaluation report (EER, minDCF, DET curve). See README.md here.
# Usage: recipes/librispeech/run.sh [--stage N] [--corpus-root DIR] [--nj N] [--work DIR]
set -euo pipefail

# --- settings ---------------------------------------------------------------------------
stage=0
nj=2
corpus_root="${LIBRISPEECH_ROOT:-}"   # holds train-clean-100/, test-clean/ (and dev-clean/);
                                      # empty: downloaded into $work/corpus
work="${LIBRISPEECH_WORK:-exp/librispeech}"
# 16 kHz, 24 MFCC + Δ, CMN, no VAD: the settings chosen on speechocean762 (clean read
# speech, like LibriSpeech), not tuned on LibriSpeech
config="$(dirname "$0")/conf/features.json"
components=512
iterations=10
subsample=4                  # UBM EM on every 4th frame (~9M of train-clean-100's ~36M)
relevance=8                  # MAP relevance (means only), as chosen on speechocean762
cohort_utts=300              # S-norm: 300 of the cohort's utterances (data/cohort: the first
                             #   5 of each UBM speaker) as cohort test utterances
channel_factors=60           # eigenchannel rank, as chosen on speechocean762; learnt within
                             #   the UBM speakers on 3 utterances of each of their chapters
                             #   (a chapter is a recording session)
calibration=true             # true: calibrate on the dev-clean trials when dev-clean/ is
                             #   there (speakers disjoint from UBM, cohort, test); false: never
prior=0.01                   # target prior the calibration is trained for
# -------------------------------------------------------------------------------------

. "$(dirname "$0")/../parse_options.sh"
mkdir -p "$work"
download=false
if [ -z "$corpus_root" ]; then corpus_root="$work/corpus"; download=true; fi

if [ "$stage" -le 0 ]; then
  echo "== stage 0: corpus ($corpus_root)"
  # downloads (MD5-checked) the subsets not yet there, verifies those that are
  if $download; then speakergmm download librispeech "$corpus_root"; fi
fi

if [ "$stage" -le 1 ]; then
  echo "== stage 1: data directories (S-norm cohort included), enrollment map, trials"
  speakergmm prepare librispeech "$corpus_root" "$work/data"
  head -1 "$work/data/README"
fi

# prepare writes cal/, cal_enroll_map and cal_trials only when the corpus holds dev-clean/
calibrate=false
if [ "$calibration" = true ] && [ -f "$work/data/cal_trials" ]; then calibrate=true; fi
parts=(ubm cohort enroll test)
if $calibrate; then parts+=(cal); fi

if [ "$stage" -le 2 ]; then
  echo "== stage 2: features"
  for part in "${parts[@]}"; do
    speakergmm extract "$work/data/$part" "$work/feats/$part" --audio-root "$corpus_root" \
      --config "$config" -j "$nj"
  done
fi

if [ "$stage" -le 3 ]; then
  echo "== stage 3: UBM; statistics; eigenchannel (session variability) subspace"
  speakergmm train-ubm "$work/feats/ubm" -c "$components" -n "$iterations" \
    --subsample "$subsample" -j "$nj" -o "$work/ubm.npz"
  # class map: speaker of the first 3 utterances (<spk>-<chapter>-<n>) of every chapter
  awk '{ split($1, id, "-"); c = id[1] "-" id[2]; if (n[c]++ < 3) print $1, $2 }' \
    "$work/feats/ubm/utt2spk" > "$work/utt2class"
  # the class map's statistics once: read by train-channel
  speakergmm stats "$work/feats/ubm" --ubm "$work/ubm.npz" --subset "$work/utt2class" \
    -j "$nj" -o "$work/stats/ubm_classes"
  speakergmm train-channel "$work/stats/ubm_classes" --ubm "$work/ubm.npz" \
    --utt2class "$work/utt2class" -r "$channel_factors" --relevance "$relevance" -j "$nj" \
    -o "$work/channel.npz"
fi

if [ "$stage" -le 4 ]; then
  echo "== stage 4: enroll and score: top-C; + eigenchannel compensation; + S-norm against"
  echo "   the UBM speakers; + calibration"
  speakergmm score "$work/data/trials" --enroll "$work/feats/enroll" \
    --enroll-map "$work/data/enroll_map" --test "$work/feats/test" --ubm "$work/ubm.npz" \
    --relevance "$relevance" -j "$nj" -o "$work/scores_topc"
  # With calibration, the evaluation trials and the calibration trials (the same protocol
  # run on dev-clean's speakers) in one pass, which also writes the scores before S-norm:
  # each utterance is compensated and scored once.
  trials=("$work/data/trials") maps=("$work/data/enroll_map") sources=()
  if $calibrate; then
    trials+=("$work/data/cal_trials") maps+=("$work/data/cal_enroll_map")
    sources=(--enroll "$work/feats/cal" --test "$work/feats/cal")
  fi
  cat "${trials[@]}" > "$work/all_trials"
  cat "${maps[@]}" > "$work/all_enroll_map"
  speakergmm score "$work/all_trials" --enroll "$work/feats/enroll" \
    --test "$work/feats/test" "${sources[@]}" --enroll-map "$work/all_enroll_map" \
    --ubm "$work/ubm.npz" --relevance "$relevance" --channel "$work/channel.npz" \
    --norm snorm --cohort "$work/feats/cohort" --cohort-utts "$cohort_utts" -j "$nj" \
    --raw-output "$work/all_scores_topc_ec" -o "$work/all_scores_topc_ec_snorm"
  for scores in topc_ec topc_ec_snorm; do
    if $calibrate; then  # split by model: dev-clean speakers or not
      awk 'NR == FNR { cal[$1]; next } !($1 in cal)' "$work/data/cal_enroll_map" \
        "$work/all_scores_$scores" > "$work/scores_$scores"
      awk 'NR == FNR { cal[$1]; next } ($1 in cal)' "$work/data/cal_enroll_map" \
        "$work/all_scores_$scores" > "$work/cal_scores_$scores"
    else
      cp "$work/all_scores_$scores" "$work/scores_$scores"
    fi
  done
  if $calibrate; then
    speakergmm calibrate "$work/cal_scores_topc_ec_snorm" --trials "$work/data/cal_trials" \
      --prior "$prior" -o "$work/calibration.json"
    speakergmm apply-calibration "$work/calibration.json" "$work/scores_topc_ec_snorm" \
      -o "$work/scores_topc_ec_snorm_cal"
  fi
fi

if [ "$stage" -le 5 ]; then
  echo "== stage 5: evaluate"
  systems=("$work/scores_topc" "$work/scores_topc_ec" "$work/scores_topc_ec_snorm")
  if $calibrate; then systems+=("$work/scores_topc_ec_snorm_cal"); fi
  speakergmm evaluate "${systems[@]}" --trials "$work/data/trials" -o "$work/report"
fi

# Results: not run yet. The corpus is not on the development machine; the recipe has run
# end to end only on a tiny synthetic corpus in the LibriSpeech layout (tests/test_recipes.py).
# Fill in this block (and README.md) from the first run on the real corpus.
