#!/usr/bin/env bash
# GMM-UBM and i-vector/PLDA speaker verification on speechocean762, and their fusion: data
# directories (official protocol when test/ is present, dev protocol on train/ alone),
# features, UBM, enrollment and scoring, i-vectors, PLDA, fusion, evaluation report (EER,
# minDCF, DET curve). See README.md here.
# Usage: recipes/speechocean762/run.sh [--stage N] [--corpus-root DIR] [--nj N] [--work DIR]
# Without --corpus-root (or $SPEECHOCEAN762_ROOT) the corpus is downloaded into $work/corpus.
set -euo pipefail

# --- settings ---------------------------------------------------------------------------
stage=0
nj=2
corpus_root="${SPEECHOCEAN762_ROOT:-}"   # holds train/ (and test/), WAVE/
work="${SPEECHOCEAN762_WORK:-exp/speechocean762}"
config="$(dirname "$0")/conf/features.json"   # 16 kHz, 24 MFCC + Δ, no VAD, mean normalisation
components=256
iterations=10
relevance=8                             # MAP relevance (means only)
cohort_utts=5000                        # S-norm against every cohort utterance
cohort_enroll_utts=5                    # cohort models enrolled on 5 utterances, as the
                                        # speakers are
channel_factors=60                      # eigenchannel rank, learnt within the cohort
                                        # speakers (chosen on two folds; see README.md)
prior=0.01                              # target prior the calibration is trained for
ivector_dim=300                         # i-vector system: T of rank 300, learnt (like the
ivector_iterations=10                   #   PLDA) on the cohort speakers only
plda_iterations=10
lda=0                                   # LDA dimension before length norm + PLDA (0: none)
folds=3                                 # stage 6: how many of the three other splits of
                                        #   the background speakers to score (fewer: a
                                        #   quicker, less certain calibration)
mirror=false                            # true: the dev protocol's mirror image (its
                                        #   background and evaluation speakers swapped)
# -------------------------------------------------------------------------------------

. "$(dirname "$0")/../parse_options.sh"
mkdir -p "$work"

# ivector_system OUT DATA COHORT_STATS BACKGROUND_IVECTORS: T and PLDA learnt on the cohort
# speakers of one split of the background speakers (DATA: its cohort/, cal_enroll_map,
# cal_trials), the background's i-vectors, and PLDA scores of its calibration trials
# (OUT/cal_scores_ivector_plda)
ivector_system() {
  local out=$1 data=$2 cohort_stats=$3 background=$4
  speakergmm train-ivector "$cohort_stats" --ubm "$work/ubm.npz" -r "$ivector_dim" \
    -n "$ivector_iterations" -j "$nj" -o "$out/ivector.npz"
  rm -rf "$background"  # (an archive refuses another extractor's vectors)
  speakergmm extract-ivectors "$work/stats/ubm" --ubm "$work/ubm.npz" \
    --extractor "$out/ivector.npz" -j "$nj" -q -o "$background"
  local plda=(speakergmm train-plda "$background" --utt2spk "$data/cohort/utt2spk" \
    -n "$plda_iterations" -o "$out/plda.npz")
  if [ "$lda" -gt 0 ]; then plda+=(--lda "$lda"); fi
  "${plda[@]}"
  speakergmm score "$data/cal_trials" --enroll "$background" \
    --enroll-map "$data/cal_enroll_map" --test "$background" --backend plda \
    --plda "$out/plda.npz" -o "$out/cal_scores_ivector_plda"
}

if [ -z "$corpus_root" ]; then
  # no copy given: fetch the whole corpus (both halves: the official protocol) from OpenSLR
  corpus_root="$work/corpus/speechocean762"
  if [ "$stage" -le 0 ]; then
    echo "== stage 0: corpus (OpenSLR resource 101, CC BY 4.0) into $work/corpus"
    speakergmm download speechocean762 "$work/corpus"
  fi
fi

if [ "$stage" -le 1 ]; then
  echo "== stage 1: data directories, enrollment map, trials"
  prepare=(speakergmm prepare speechocean762 "$corpus_root" "$work/data")
  if [ "$mirror" = true ]; then prepare+=(--mirror); fi
  "${prepare[@]}"
  head -1 "$work/data/README"
fi

if [ "$stage" -le 2 ]; then
  echo "== stage 2: features"
  # the cohort's utterances are in ubm/ (cohort speakers train the UBM too): its features
  # serve them, as they serve the calibration speakers'
  for part in ubm enroll test; do
    speakergmm extract "$work/data/$part" "$work/feats/$part" --audio-root "$corpus_root" \
      --config "$config" -j "$nj"
  done
fi

if [ "$stage" -le 3 ]; then
  echo "== stage 3: UBM; statistics; eigenchannel (session variability) subspace"
  speakergmm train-ubm "$work/feats/ubm" -c "$components" -n "$iterations" -j "$nj" \
    -o "$work/ubm.npz"
  # the cohort's statistics once: read by train-channel
  speakergmm stats "$work/feats/ubm" --ubm "$work/ubm.npz" --subset "$work/data/cohort/utt2spk" \
    -j "$nj" -o "$work/stats/cohort"
  # learnt on the cohort speakers only: the calibration speakers must stay unseen, or their
  # trials (the calibration data) come out separated far better than any new speaker's
  speakergmm train-channel "$work/stats/cohort" --ubm "$work/ubm.npz" -r "$channel_factors" \
    --relevance "$relevance" -j "$nj" -o "$work/channel.npz"
fi

if [ "$stage" -le 4 ]; then
  echo "== stage 4: enroll and score: top-C; + eigenchannel compensation; + S-norm against"
  echo "   the cohort speakers"
  speakergmm score "$work/data/trials" --enroll "$work/feats/enroll" \
    --enroll-map "$work/data/enroll_map" --test "$work/feats/test" --ubm "$work/ubm.npz" \
    --relevance "$relevance" -j "$nj" -o "$work/scores_topc"
  # The evaluation trials and the calibration trials (among the calibration speakers, kept
  # out of the cohort; their utterances are in ubm/) in one pass, which also writes the
  # scores before S-norm: each utterance is compensated and scored once.
  cat "$work/data/enroll_map" "$work/data/cal_enroll_map" > "$work/all_enroll_map"
  cat "$work/data/trials" "$work/data/cal_trials" > "$work/all_trials"
  speakergmm score "$work/all_trials" --enroll "$work/feats/enroll" --enroll "$work/feats/ubm" \
    --enroll-map "$work/all_enroll_map" --test "$work/feats/test" --test "$work/feats/ubm" \
    --ubm "$work/ubm.npz" --relevance "$relevance" --channel "$work/channel.npz" \
    --norm snorm --cohort "$work/feats/ubm" --cohort-utt2spk "$work/data/cohort/utt2spk" \
    --cohort-utts "$cohort_utts" --cohort-enroll-utts "$cohort_enroll_utts" -j "$nj" \
    --raw-output "$work/all_scores_topc_ec" -o "$work/all_scores_topc_ec_snorm"
  for scores in topc_ec topc_ec_snorm; do  # split by model: calibration speakers or not
    awk 'NR == FNR { cal[$1]; next } !($1 in cal)' "$work/data/cal_enroll_map" \
      "$work/all_scores_$scores" > "$work/scores_$scores"
    awk 'NR == FNR { cal[$1]; next } ($1 in cal)' "$work/data/cal_enroll_map" \
      "$work/all_scores_$scores" > "$work/cal_scores_$scores"
  done
fi

if [ "$stage" -le 5 ]; then
  echo "== stage 5: i-vector / PLDA system"
  # statistics of every part under the UBM, without channel compensation (T models it)
  speakergmm stats "$work/feats/ubm" --ubm "$work/ubm.npz" -j "$nj" -q -o "$work/stats/ubm"
  for part in enroll test; do
    speakergmm stats "$work/feats/$part" --ubm "$work/ubm.npz" -j "$nj" -q \
      -o "$work/stats/$part"
  done
  # T and PLDA from the cohort speakers only: learnt on the calibration speakers too, the
  # calibration trials come out easier than any new speaker's (see README.md)
  rm -rf "$work/ivectors"  # of an earlier extractor: an archive refuses another's vectors
  ivector_system "$work" "$work/data" "$work/stats/cohort" "$work/ivectors/ubm"
  for part in enroll test; do
    speakergmm extract-ivectors "$work/stats/$part" --ubm "$work/ubm.npz" \
      --extractor "$work/ivector.npz" -j "$nj" -q -o "$work/ivectors/$part"
  done
  speakergmm score "$work/data/trials" --enroll "$work/ivectors/enroll" \
    --enroll-map "$work/data/enroll_map" --test "$work/ivectors/test" --backend plda \
    --plda "$work/plda.npz" -o "$work/scores_ivector_plda"
fi

if [ "$stage" -le 6 ]; then
  echo "== stage 6: cross-fold calibration and fusion: both systems again on the three other"
  echo "   splits of the background speakers, each scoring its own calibration trials"
  # Every background speaker's trials scored once by systems (eigenchannel, cohort, T,
  # PLDA) that never saw that speaker: four times the calibration speakers of one split
  # (15 did not fix an operating point at prior 0.01; see README.md). The evaluated
  # systems are stage 4's and 5's; their split is the fourth.
  cat "$work/cal_scores_topc_ec_snorm" > "$work/xcal_scores_topc_ec_snorm"
  cat "$work/cal_scores_ivector_plda" > "$work/xcal_scores_ivector_plda"
  cat "$work/data/cal_trials" > "$work/xcal_trials"
  for fold in $(ls -d "$work"/data/folds/*/ | head -n "$folds"); do
    f="$work/folds/$(basename "$fold")"
    mkdir -p "$f"
    speakergmm stats "$work/feats/ubm" --ubm "$work/ubm.npz" --subset "$fold/cohort/utt2spk" \
      -j "$nj" -q -o "$f/stats/cohort"
    speakergmm train-channel "$f/stats/cohort" --ubm "$work/ubm.npz" -r "$channel_factors" \
      --relevance "$relevance" -j "$nj" -o "$f/channel.npz"
    speakergmm score "$fold/cal_trials" --enroll "$work/feats/ubm" \
      --enroll-map "$fold/cal_enroll_map" --test "$work/feats/ubm" --ubm "$work/ubm.npz" \
      --relevance "$relevance" --channel "$f/channel.npz" --norm snorm \
      --cohort "$work/feats/ubm" --cohort-utt2spk "$fold/cohort/utt2spk" \
      --cohort-utts "$cohort_utts" --cohort-enroll-utts "$cohort_enroll_utts" -j "$nj" \
      -o "$f/cal_scores_topc_ec_snorm"
    ivector_system "$f" "$fold" "$f/stats/cohort" "$f/ivectors/ubm"
    cat "$f/cal_scores_topc_ec_snorm" >> "$work/xcal_scores_topc_ec_snorm"
    cat "$f/cal_scores_ivector_plda" >> "$work/xcal_scores_ivector_plda"
    cat "$fold/cal_trials" >> "$work/xcal_trials"
  done
  speakergmm calibrate "$work/xcal_scores_topc_ec_snorm" --trials "$work/xcal_trials" \
    --prior "$prior" -o "$work/calibration.json"
  speakergmm apply-calibration "$work/calibration.json" "$work/scores_topc_ec_snorm" \
    -o "$work/scores_topc_ec_snorm_cal"
  speakergmm calibrate "$work/xcal_scores_ivector_plda" --trials "$work/xcal_trials" \
    --prior "$prior" -o "$work/calibration_ivector.json"
  speakergmm apply-calibration "$work/calibration_ivector.json" \
    "$work/scores_ivector_plda" -o "$work/scores_ivector_plda_cal"
  speakergmm fuse "$work/xcal_scores_topc_ec_snorm" "$work/xcal_scores_ivector_plda" \
    --trials "$work/xcal_trials" --prior "$prior" -o "$work/fusion.json"
  speakergmm apply-calibration "$work/fusion.json" "$work/scores_topc_ec_snorm" \
    "$work/scores_ivector_plda" -o "$work/scores_fusion"
fi

if [ "$stage" -le 7 ]; then
  echo "== stage 7: evaluate"
  speakergmm evaluate "$work/scores_topc" "$work/scores_topc_ec" "$work/scores_topc_ec_snorm" \
    "$work/scores_topc_ec_snorm_cal" "$work/scores_ivector_plda_cal" "$work/scores_fusion" \
    --trials "$work/data/trials" -o "$work/report"
fi

# Results (dev protocol), 2026-11-30, speakergmm 0.1.0, 2-core VM, --nj 2, 5 min 1 s wall:
# system                                          EER ROCCH (linear)  minDCF vox  actDCF vox  Cllr   id
# top-C (C=5)                                     2.06% (2.15%)       0.379       0.994       0.592  96.5%
# top-C + eigenchannel                            1.44% (1.51%)       0.294       0.995       0.696  97.1%
# top-C + eigenchannel + S-norm                   1.22% (1.24%)       0.235       0.273       0.592  97.4%
# top-C + eigenchannel + S-norm + calibration     1.22% (1.24%)       0.235       0.245       0.090  97.4%
# i-vector (R = 300) / PLDA + calibration         3.13% (3.23%)       0.408       0.414       0.130  90.6%
# fusion of the two systems                       0.96% (0.97%)       0.185       0.187       0.056  98.2%
# (930 target, 56,730 non-target trials; calibration and fusion trained across the four
# splits of the background speakers; see README.md for how the settings were chosen)
