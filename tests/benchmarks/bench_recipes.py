"""Benchmark whole recipes end to end against another checkout of speakergmm (the peer:
an older commit), interleaved in one run on one machine, and check the figures agree.

    python tests/benchmarks/bench_recipes.py --peer /tmp/before [--runs 3]
        [--corpora ../shared/corpora] [--recipes fsdd speechocean762]

``--peer`` is a source tree (e.g. ``git worktree add /tmp/before <commit>``); each recipe
runs from its own tree's ``recipes/`` with that tree's package first on ``sys.path`` and
the same interpreter. Prints the wall time of every run, the medians and their ratio, and
each system's EER / minDCF / identification from both reports (they must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPES = {
    "fsdd": lambda root, work: (["recipes/fsdd/run.sh", "--work", work],
                                {"FSDD_ROOT": str(root / "fsdd")}),
    "speechocean762": lambda root, work: (["recipes/speechocean762/run.sh", "--corpus-root",
                                           str(root / "speechocean762"), "--work", work], {}),
}


def shim(tree: Path, where: Path) -> Path:
    """A ``speakergmm`` command running ``tree``'s package with this interpreter."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / "speakergmm"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.path.insert(0, "
                      f"\"{tree}\"); from speakergmm.cli import main; sys.argv[0] = "
                      f"\"speakergmm\"; main()' \"$@\"\n")
    script.chmod(0o755)
    return where


def run(tree: Path, recipe: str, corpora: Path, scratch: Path) -> tuple[float, dict]:
    work = Path(tempfile.mkdtemp(dir=scratch))
    argv, env = RECIPES[recipe](corpora, str(work))
    env = {**os.environ, **env,
           "PATH": f"{shim(tree, scratch / ('bin-' + tree.name))}:{os.environ['PATH']}"}
    started = time.perf_counter()
    subprocess.run(["bash", *argv], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    report = json.loads((work / "report" / "report.json").read_text())
    figures = {Path(name).name: (round(100 * f["eer_rocch"], 2),
                                 round(f["min_dcf"]["vox"]["value"], 3),
                                 round(f["act_dcf"]["vox"]["value"], 3),
                                 round(f["cllr"], 3),
                                 None if f["identification_accuracy"] is None
                                 else round(100 * f["identification_accuracy"], 1))
               for name, f in report["systems"].items()}
    return seconds, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", type=Path, required=True, help="the other source tree")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()
    trees = {"peer": args.peer.resolve(), "this": REPO}
    with tempfile.TemporaryDirectory() as scratch:
        for recipe in args.recipes:
            times = {name: [] for name in trees}
            figures = {}
            for i in range(args.runs):
                for name, tree in trees.items():  # interleaved: the same machine load
                    seconds, figures[name] = run(tree, recipe, args.corpora, Path(scratch))
                    times[name].append(seconds)
                    print(f"{recipe} run {i + 1} {name}: {seconds:.1f} s", flush=True)
            peer, this = (statistics.median(times[n]) for n in ("peer", "this"))
            print(f"\n{recipe}: median of {args.runs}")
            print("| tree | runs (s) | median (s) |")
            print("|---|---|---|")
            for name in trees:
                print(f"| {name} ({trees[name]}) | "
                      f"{', '.join(f'{t:.1f}' for t in times[name])} | "
                      f"{statistics.median(times[name]):.1f} |")
            print(f"speed-up (peer / this): {peer / this:.2f}x")
            print("figures (EER %, minDCF vox, actDCF vox, Cllr, identification %):")
            for system in figures["this"]:
                same = figures["peer"].get(system) == figures["this"][system]
                print(f"  {system}: {figures['this'][system]}"
                      + ("" if same else f"  DIFFERENT from peer {figures['peer'].get(system)}"))
            print()


if __name__ == "__main__":
    main()
