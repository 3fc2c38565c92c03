#!/usr/bin/env bash
# Who spoke when on a public benchmark, scored as its literature scores it, with the
# published anchors beside the result. See README.md here.
# Usage: recipes/diarization/run.sh --corpus voxconverse|ami|callhome|conversations
#            [--stage N] [--corpus-root DIR] [--part dev|test] [--work DIR] [--band B]
#            [--model FILE --diarization-system SYS --detector SAD]
#   voxconverse:   audio (CC BY 4.0) from the VGG site, RTTMs (v0.3) from GitHub;
#   ami:           Mix-Headset audio of the AMI corpus (CC BY 4.0) and the only_words
#                  references and UEMs of BUTSpeechFIT/AMI-diarization-setup;
#   callhome:      LDC97S42 (licensed; no download): --corpus-root holds its .wav files
#                  (or .sph, converted with sph2pipe) and --rttm the reference;
#   conversations: simulated ones ('speakergmm prepare conversations' of speechocean762's
#                  dev evaluation speakers, or any folder of them given as --corpus-root).
set -euo pipefail

# --- settings ---------------------------------------------------------------------------
corpus=""
stage=0
part=test
corpus_root=""       # the corpus on disk; empty: downloaded into $work/corpus
rttm=""              # callhome: the reference RTTM (NIST SRE 2000's, as Kaldi's recipe)
speechocean762=""    # conversations: the speechocean762 root to simulate them from
count=20             # conversations: how many
work=""
band=auto            # the bundled models: auto, wideband or telephone
model=""             # a diarization model of 'speakergmm train-diarization' instead
diarization_system=""
detector=""
# -------------------------------------------------------------------------------------

. "$(dirname "$0")/../parse_options.sh"
case "$corpus" in
  voxconverse|ami|callhome|conversations) ;;
  *) echo "$(basename "$0"): --corpus must be voxconverse, ami, callhome or conversations" >&2
     exit 2 ;;
esac
work="${work:-exp/diarization/$corpus}"
mkdir -p "$work"
audio="$work/audio"      # the recordings, one file each, named by recording id
ref="$work/ref.rttm"
uem=""

if [ "$stage" -le 0 ]; then
  echo "== stage 0: corpus ($corpus, $part)"
  mkdir -p "$audio"
  case "$corpus" in
    voxconverse)
      # v0.3 references; audio: the dev zip, or the test zip (the test set's references
      # are its folder "test" of the repository)
      root="${corpus_root:-$work/corpus}"
      if [ -z "$corpus_root" ]; then
        mkdir -p "$root"
        curl -fL -o "$root/rttm.zip" \
          https://github.com/joonson/voxconverse/archive/refs/heads/master.zip
        curl -fL -o "$root/audio.zip" \
          "https://www.robots.ox.ac.uk/~vgg/data/voxconverse/data/voxconverse_${part}_wav.zip"
        (cd "$root" && unzip -qo rttm.zip && unzip -qo audio.zip)
      fi
      cat "$root"/voxconverse-master/"$part"/*.rttm > "$ref"
      find "$root" -name '*.wav' -print0 | while IFS= read -r -d '' f; do
        ln -sf "$(realpath "$f")" "$audio/"
      done
      ;;
    ami)
      root="${corpus_root:-$work/corpus}"
      setup="$root/AMI-diarization-setup-main"
      if [ ! -d "$setup" ]; then
        mkdir -p "$root"
        curl -fL -o "$root/setup.zip" \
          https://github.com/BUTSpeechFIT/AMI-diarization-setup/archive/refs/heads/main.zip
        (cd "$root" && unzip -qo setup.zip)
      fi
      while read -r m; do
        if [ ! -f "$root/$m.Mix-Headset.wav" ]; then
          curl -fL -o "$root/$m.Mix-Headset.wav" \
            "https://groups.inf.ed.ac.uk/ami/AMICorpusMirror/amicorpus/$m/audio/$m.Mix-Headset.wav"
        fi
        ln -sf "$(realpath "$root/$m.Mix-Headset.wav")" "$audio/$m.wav"
      done < "$setup/lists/$part.meetings.txt"
      cat "$setup/only_words/rttms/$part"/*.rttm > "$ref"
      cat "$setup/uems/$part"/*.uem > "$work/all.uem"
      uem="$work/all.uem"
      ;;
    callhome)
      if [ -z "$corpus_root" ] || [ -z "$rttm" ]; then
        echo "$(basename "$0"): CALLHOME (LDC97S42) is licensed: give --corpus-root (its" \
             "audio) and --rttm (the reference)" >&2
        exit 2
      fi
      for f in "$corpus_root"/*.sph; do
        [ -e "$f" ] || continue
        sph2pipe -f wav -p "$f" > "$audio/$(basename "$f" .sph).wav"
      done
      for f in "$corpus_root"/*.wav; do
        [ -e "$f" ] && ln -sf "$(realpath "$f")" "$audio/"
      done
      cp "$rttm" "$ref"
      ;;
    conversations)
      if [ -z "$corpus_root" ]; then
        if [ -z "$speechocean762" ]; then
          echo "$(basename "$0"): give --corpus-root (a folder of 'speakergmm prepare" \
               "conversations') or --speechocean762 (its root, to simulate them)" >&2
          exit 2
        fi
        speakergmm prepare speechocean762 "$speechocean762" "$work/data" >/dev/null
        corpus_root="$work/conversations"
        speakergmm prepare conversations "$work/data/test" "$corpus_root" \
          --audio-root "$speechocean762" --count "$count" --seed 1 >/dev/null
      fi
      for f in "$corpus_root"/wav/*; do ln -sf "$(realpath "$f")" "$audio/"; done
      cp "$corpus_root/rttm" "$ref"
      ;;
  esac
  echo "$(ls "$audio" | wc -l) recordings, $(wc -l < "$ref") reference turns"
fi
[ -f "$work/all.uem" ] && uem="$work/all.uem"

if [ "$stage" -le 1 ]; then
  echo "== stage 1: diarization"
  models=(--band "$band")
  if [ -n "$model" ]; then
    models+=(--model "$model")
    [ -n "$diarization_system" ] && models+=(--diarization-system "$diarization_system")
    [ -n "$detector" ] && models+=(--detector "$detector")
  fi
  speakergmm diarize "$audio"/* -o "$work/hyp.rttm" --json "$work/hyp.json" "${models[@]}"
fi

if [ "$stage" -le 2 ]; then
  echo "== stage 2: evaluation"
  # each benchmark's own convention first; the report gives the four conditions
  case "$corpus" in
    callhome) scoring=(--collar 0.25 --skip-overlap)   # Kaldi's (md-eval -1 -c 0.25)
      anchor="Kaldi's i-vector recipe (callhome_diarization v1): 10.32% with a tuned threshold, 9.26% with the oracle speaker count (collar 0.25 s, overlap not scored)" ;;
    voxconverse) scoring=(--collar 0)                   # pyannote's: no collar, overlap
      anchor="pyannote.audio 3.1: 11.3% on VoxConverse v0.3 test (no collar, overlap scored)" ;;
    ami) scoring=(--collar 0)
      anchor="pyannote.audio 3.1: 18.8% on AMI Mix-Headset only_words test (no collar, overlap scored)" ;;
    conversations) scoring=(--collar 0.25 --skip-overlap)
      anchor="none published: dev figures in README.md (Who spoke when)" ;;
  esac
  speakergmm evaluate-diarization -r "$ref" -s "$work/hyp.rttm" ${uem:+--uem "$uem"} \
    "${scoring[@]}" -o "$work/report"
  echo "anchor: $anchor"
fi
