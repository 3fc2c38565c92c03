"""How much enrollment speech a speaker model needs: EER and identification against the
seconds of audio enrolled, scored as the product path scores (a system's features,
eigenchannel compensation, MAP, top-C, S-norm), on the speechocean762 dev protocol's
evaluation speakers.

    recipes/systems/run.sh --split dev --corpus-root ../shared/corpora/speechocean762 \
        --work exp/systems
    python tests/benchmarks/bench_enroll_duration.py --system exp/systems/dev/wideband.npz
        [--corpus ../shared/corpora/speechocean762] [--seconds 1 2 3 5 8 12 20] [--jobs 2]

Each evaluation speaker is enrolled on the first S seconds of the frames of its five
enrollment recordings, taken in order; every test recording is scored against every
speaker. With the system built on the dev split the speakers are unseen; the point is
where accuracy collapses as S shrinks, which sets the enrollment warning of the product
path.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path,
                        default=REPO.parent / "shared" / "corpora" / "speechocean762")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1, 2, 3, 5, 8, 12, 20])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--system", type=Path, required=True,
                        help="a system file (recipes/systems/run.sh --split dev)")
    args = parser.parse_args()

    from speakergmm.backend.scoring import ModelSet
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.data.trials import Trials
    from speakergmm.eval.metrics import identification_accuracy, min_dcf, rocch_eer
    from speakergmm.frontend.archive import extract_archive, read_features
    from speakergmm.gmm.adapt import SpeakerModel
    from speakergmm.gmm.eigenchannel import CompensatedFeatures
    from speakergmm.system import load_system

    system = load_system(args.system)
    ubm, config = system.ubm, system.config
    shift = config.frame_shift_ms / 1000
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        protocol = prepare_speechocean762(args.corpus, work / "data")
        feats = {}
        for part in ("enroll", "test"):
            extract_archive(work / "data" / part, work / part, config=config,
                            audio_root=args.corpus, executor=args.jobs)
            feats[part] = CompensatedFeatures(read_features(work / part), system.channel)
        trials: Trials = protocol.trials["trials"]
        enroll_map = protocol.enroll_maps["enroll_map"]
        available = [sum(feats["enroll"].features.num_frames(u) for u in utts) * shift
                     for utts in enroll_map.values()]
        print(f"{len(enroll_map)} speakers, {len(trials)} trials; enrollment speech per "
              f"speaker: median {np.median(available):.1f} s, min {min(available):.1f} s")
        print("| enrollment speech (s) | EER | minDCF vox | closed-set identification |")
        print("|---|---|---|---|")
        for seconds in args.seconds:
            frames = int(round(seconds / shift))
            means, ids = [], []
            for speaker, utts in enroll_map.items():
                x = np.concatenate([feats["enroll"][u] for u in utts])[:frames]
                model = SpeakerModel.enroll(ubm, [x], relevance=system.relevance).adapted(ubm)
                means.append(model.means.astype(np.float32))
                ids.append(speaker)
            models = ModelSet(ubm, np.stack(means), ids=ids)
            scores = system.trial_scores(models, trials, feats["test"])
            tar, non = scores[trials.is_target], scores[~trials.is_target]
            print(f"| {seconds:g} | {100 * rocch_eer(tar, non):.2f}% | "
                  f"{min_dcf(tar, non):.3f} | "
                  f"{100 * identification_accuracy(scores, trials):.1f}% |", flush=True)


if __name__ == "__main__":
    main()
