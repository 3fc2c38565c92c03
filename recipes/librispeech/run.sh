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
config="$(dirname "$0")/conf/features.json"   # speechocean762's: 16 kHz, 20 MFCC + Δ, no VAD, CMN
components=512
iterations=10
subsample=4                  # UBM EM on every 4th frame (~9M of train-clean-100's ~36M)
cohort_per_spk=5             # S-norm cohort: first 5 utterances of each UBM speaker, one
cohort_utts=300              #   model per speaker (as enrollment), 300 cohort test utterances
cal_subset=dev-clean         # calibration trials (speakers disjoint from UBM, cohort and
                             #   test); "none": no calibration
prior=0.01                   # target prior the calibration is trained for
mirror=https://www.openslr.org/resources/12
checksums="$(dirname "$0")/conf/md5sum.txt"   # the MD5 sums OpenSLR publishes (md5sum.txt)
# -------------------------------------------------------------------------------------

. "$(dirname "$0")/../parse_options.sh"
mkdir -p "$work"
download=false
if [ -z "$corpus_root" ]; then corpus_root="$work/corpus"; download=true; fi

fetch() {  # fetch SUBSET: download SUBSET.tar.gz, check its MD5, unpack into $corpus_root
  local subset="$1" name="$1.tar.gz" sum tgz tmp f
  sum=$(awk -v f="$name" '$2 == f || $2 == "*" f { print $1 }' "$checksums")
  [ -n "$sum" ] || { echo "run.sh: no MD5 sum for $name in $checksums" >&2; exit 1; }
  mkdir -p "$corpus_root"
  tgz="$corpus_root/$name"
  if [ ! -f "$tgz" ]; then
    echo "downloading $mirror/$name"
    if ! curl -fL --retry 3 -C - -o "$tgz.part" "$mirror/$name"; then
      echo "run.sh: downloading $mirror/$name failed; run stage 0 again to resume, or give" \
           "--mirror another OpenSLR mirror (see https://www.openslr.org/12/)" >&2
      exit 1
    fi
    mv "$tgz.part" "$tgz"
  fi
  if ! echo "$sum  $tgz" | md5sum -c --quiet - >/dev/null 2>&1; then
    rm -f "$tgz"
    echo "run.sh: $tgz: MD5 differs from the published $sum (removed; run stage 0 again)" >&2
    exit 1
  fi
  tmp="$corpus_root/.unpack-$subset"
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar -xzf "$tgz" -C "$tmp"
  if [ ! -d "$tmp/LibriSpeech/$subset" ]; then
    echo "run.sh: $name holds no LibriSpeech/$subset/" >&2; exit 1
  fi
  mv "$tmp/LibriSpeech/$subset" "$corpus_root/$subset"
  for f in "$tmp"/LibriSpeech/*; do   # README.TXT, SPEAKERS.TXT, ...
    if [ -e "$f" ] && [ ! -e "$corpus_root/${f##*/}" ]; then mv "$f" "$corpus_root/"; fi
  done
  rm -rf "$tmp" "$tgz"
}

if [ "$stage" -le 0 ]; then
  echo "== stage 0: corpus ($corpus_root)"
  subsets=(train-clean-100 test-clean)
  if [ "$cal_subset" != none ]; then subsets+=("$cal_subset"); fi
  for subset in "${subsets[@]}"; do
    if [ -d "$corpus_root/$subset" ]; then
      echo "$subset: present"
    elif $download; then
      fetch "$subset"
    elif [ "$subset" != "$cal_subset" ]; then
      echo "run.sh: $corpus_root has no $subset/ (LibriSpeech root expected; leave out" \
           "--corpus-root to download the corpus from OpenSLR)" >&2
      exit 2
    fi
  done
fi

calibrate=false
if [ "$cal_subset" != none ]; then
  if [ -d "$corpus_root/$cal_subset" ]; then calibrate=true
  else echo "note: no $cal_subset/ in $corpus_root: no calibration (2 systems, not 3)"; fi
fi

if [ "$stage" -le 1 ]; then
  echo "== stage 1: data directories, enrollment map, trials"
  speakergmm prepare librispeech "$corpus_root" "$work/data"
  head -1 "$work/data/README"
  # S-norm cohort: the first $cohort_per_spk utterances (sorted ids) of every UBM speaker
  mkdir -p "$work/data/cohort"
  awk -v n="$cohort_per_spk" 'seen[$2]++ < n' "$work/data/ubm/utt2spk" > "$work/data/cohort/utt2spk"
  awk 'NR == FNR { keep[$1]; next } $1 in keep' "$work/data/cohort/utt2spk" \
    "$work/data/ubm/wav.scp" > "$work/data/cohort/wav.scp"
  awk '{ u[$2] = u[$2] " " $1 } END { for (s in u) print s u[s] }' \
    "$work/data/cohort/utt2spk" | LC_ALL=C sort > "$work/data/cohort/spk2utt"
  speakergmm validate-data-dir "$work/data/cohort" --audio-root "$corpus_root"
  if $calibrate; then
    # The same protocol on $cal_subset: a view of the corpus in which it stands in for
    # test-clean (its data_cal/ubm is train-clean-100 again, and unused).
    root=$(cd "$corpus_root" && pwd)
    mkdir -p "$work/cal_root"
    ln -sfn "$root/train-clean-100" "$work/cal_root/train-clean-100"
    ln -sfn "$root/$cal_subset" "$work/cal_root/test-clean"
    speakergmm prepare librispeech "$work/cal_root" "$work/data_cal"
  fi
fi

if [ "$stage" -le 2 ]; then
  echo "== stage 2: features"
  for part in ubm cohort enroll test; do
    speakergmm extract "$work/data/$part" "$work/feats/$part" --audio-root "$corpus_root" \
      --config "$config" -j "$nj"
  done
  if $calibrate; then
    for part in enroll test; do
      speakergmm extract "$work/data_cal/$part" "$work/feats/cal_$part" \
        --audio-root "$work/cal_root" --config "$config" -j "$nj"
    done
  fi
fi

if [ "$stage" -le 3 ]; then
  echo "== stage 3: UBM"
  speakergmm train-ubm "$work/feats/ubm" -c "$components" -n "$iterations" \
    --subsample "$subsample" -j "$nj" -o "$work/ubm.npz"
fi

if [ "$stage" -le 4 ]; then
  echo "== stage 4: enroll and score: top-C; + S-norm against the UBM speakers; + calibration"
  common=(--enroll "$work/feats/enroll" --enroll-map "$work/data/enroll_map"
          --test "$work/feats/test" --ubm "$work/ubm.npz" -j "$nj")
  snorm=(--norm snorm --cohort "$work/feats/cohort" --cohort-utts "$cohort_utts")
  speakergmm score "$work/data/trials" "${common[@]}" -o "$work/scores_topc"
  speakergmm score "$work/data/trials" "${common[@]}" "${snorm[@]}" -o "$work/scores_topc_snorm"
  if $calibrate; then
    # calibration trained on the same protocol run on $cal_subset's speakers
    speakergmm score "$work/data_cal/trials" --enroll "$work/feats/cal_enroll" \
      --enroll-map "$work/data_cal/enroll_map" --test "$work/feats/cal_test" \
      --ubm "$work/ubm.npz" -j "$nj" "${snorm[@]}" -o "$work/cal_scores_topc_snorm"
    speakergmm calibrate "$work/cal_scores_topc_snorm" --trials "$work/data_cal/trials" \
      --prior "$prior" -o "$work/calibration.json"
    speakergmm score "$work/data/trials" "${common[@]}" "${snorm[@]}" \
      --calibration "$work/calibration.json" -o "$work/scores_topc_snorm_cal"
  fi
fi

if [ "$stage" -le 5 ]; then
  echo "== stage 5: evaluate"
  systems=("$work/scores_topc" "$work/scores_topc_snorm")
  if $calibrate; then systems+=("$work/scores_topc_snorm_cal"); fi
  speakergmm evaluate "${systems[@]}" --trials "$work/data/trials" -o "$work/report"
fi
