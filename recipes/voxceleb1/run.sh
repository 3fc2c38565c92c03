#!/usr/bin/env bash
# GMM-UBM speaker verification on VoxCeleb1-O (original and cleaned trial lists): trial
# lists, data directories, features, UBM, enrollment and scoring, evaluation reports (EER,
# minDCF, DET curve). The audio needs registration: see README.md here.
# Usage: recipes/voxceleb1/run.sh --corpus-root DIR [--stage N] [--nj N] [--work DIR]
set -euo pipefail

# --- settings ---------------------------------------------------------------------------
stage=0
nj=2
corpus_root="${VOXCELEB1_ROOT:-}"   # holds wav/<speaker>/<video>/<nnnnn>.wav (dev and test)
                                    # and veri_test.txt, veri_test2.txt
work="${VOXCELEB1_WORK:-exp/voxceleb1}"
# 16 kHz, 20 MFCC + Δ, CMN as the LibriSpeech and speechocean762 recipes, but energy VAD
# (30 dB below the loudest frames): interview audio has pauses, laughter and music beds,
# unlike trimmed read speech
config="$(dirname "$0")/conf/features.json"
components=1024              # as the GMM-UBM baseline of Nagrani et al. (2017)
iterations=10
subsample=10                 # UBM EM on every 10th frame (dev set: ~120M frames before VAD)
cohort_utts=300              # S-norm: 300 of the cohort's utterances (data/cohort: the first
                             #   of each UBM speaker) as cohort test utterances
check_lists=true             # fetch missing trial lists and verify both (speakergmm download)
lists_url=https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/
# -------------------------------------------------------------------------------------

. "$(dirname "$0")/../parse_options.sh"
if [ -z "$corpus_root" ] || [ ! -d "$corpus_root/wav" ]; then
  echo "run.sh: VoxCeleb1 needs registration with its authors, so this recipe cannot download" \
       "it. Request access at https://www.robots.ox.ac.uk/~vgg/data/voxceleb/ (VoxCeleb1:" \
       "vox1_dev_wav and vox1_test_wav), unpack both into one folder DIR so that" \
       "DIR/wav/id10001/<video>/00001.wav exists, then give --corpus-root DIR or set" \
       "VOXCELEB1_ROOT${corpus_root:+ (got '$corpus_root': no wav/ in it)}" >&2
  exit 2
fi
mkdir -p "$work"

if [ "$stage" -le 0 ]; then
  echo "== stage 0: trial lists ($corpus_root)"
  if $check_lists; then
    # fetches veri_test.txt / veri_test2.txt if missing and verifies both (format, counts, MD5)
    if ! out=$(speakergmm download voxceleb1 "$corpus_root" 2>&1); then
      echo "$out" >&2
      if ! grep -q "cannot be downloaded automatically" <<<"$out"; then
        echo "run.sh: put veri_test.txt and veri_test2.txt from $lists_url into $corpus_root" \
             "(or give --check-lists false to use the lists there unverified)" >&2
        exit 1
      fi
      # a speakergmm older than 'speakergmm download voxceleb1': use what is there, unverified
      echo "run.sh: this speakergmm cannot fetch the trial lists; using those in" \
           "$corpus_root unverified" >&2
    else
      echo "$out"
    fi
  fi
  if [ ! -f "$corpus_root/veri_test.txt" ] && [ ! -f "$corpus_root/veri_test2.txt" ]; then
    echo "run.sh: no trial list in $corpus_root: put veri_test.txt and veri_test2.txt from" \
         "$lists_url there" >&2
    exit 2
  fi
fi

if [ "$stage" -le 1 ]; then
  echo "== stage 1: data directories (S-norm cohort included), enrollment map, trials"
  speakergmm prepare voxceleb1 "$corpus_root" "$work/data"
  head -1 "$work/data/README"
fi

if [ "$stage" -le 2 ]; then
  echo "== stage 2: features"
  for part in ubm cohort enroll test; do
    speakergmm extract "$work/data/$part" "$work/feats/$part" --audio-root "$corpus_root" \
      --config "$config" -j "$nj"
  done
fi

if [ "$stage" -le 3 ]; then
  echo "== stage 3: UBM"
  speakergmm train-ubm "$work/feats/ubm" -c "$components" -n "$iterations" \
    --subsample "$subsample" -j "$nj" -o "$work/ubm.npz"
fi

# trials: veri_test.txt (original), trials_cleaned: veri_test2.txt; outputs *_cleaned for it
lists=()
for list in trials trials_cleaned; do
  if [ -f "$work/data/$list" ]; then lists+=("$list"); fi
done

if [ "$stage" -le 4 ]; then
  echo "== stage 4: enroll (one model per enrollment utterance) and score: top-C;" \
       "+ S-norm against the UBM speakers (no calibration: see README.md)"
  common=(--enroll "$work/feats/enroll" --enroll-map "$work/data/enroll_map"
          --test "$work/feats/test" --ubm "$work/ubm.npz" -j "$nj")
  snorm=(--norm snorm --cohort "$work/feats/cohort" --cohort-utts "$cohort_utts")
  for list in "${lists[@]}"; do
    sfx="${list#trials}"
    speakergmm score "$work/data/$list" "${common[@]}" -o "$work/scores_topc$sfx"
    speakergmm score "$work/data/$list" "${common[@]}" "${snorm[@]}" \
      -o "$work/scores_topc_snorm$sfx"
  done
fi

if [ "$stage" -le 5 ]; then
  echo "== stage 5: evaluate"
  for list in "${lists[@]}"; do
    sfx="${list#trials}"
    echo "-- VoxCeleb1-O${sfx:+ (cleaned)}: $work/data/$list"
    speakergmm evaluate "$work/scores_topc$sfx" "$work/scores_topc_snorm$sfx" \
      --trials "$work/data/$list" -o "$work/report$sfx"
  done
fi
