"""Train the ablation variants and tabulate their test metrics.

    python -m train.ablate --root data_cache/embedded --steps 600 --seeds 1 2 3 --out ablation.md

Each (variant, seed) runs in ``<runs>/<variant>-seed<seed>`` and resumes there if interrupted; a finished
run is read back from its model card, not retrained. Writes a markdown table (mean +- std over seeds)
and the same numbers, with every run's, as JSON next to it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from avdemo.cache import atomic_write
from avdemo.errors import AVDemoError
from avdemo.evaluate import PICTURE_NOT_SEEN

from .config import ABLATIONS, VISION_ABLATIONS, ablation, load_config
from .loop import train
from .validation import flatten

BOTH_UNSEEN = "switch.by_media.picture not seen, recording not seen."
COLUMNS = {  # column title -> key of the flattened test report; the switch test first
    "switch: pixels, both unseen": BOTH_UNSEEN + "pixels",
    "switch: blind pixels (same)": BOTH_UNSEEN + "blind_pixels.all objects",
    "switch: pixels": "switch.pixels",
    "switch: box": "switch.box",
    "sound dependence": "switch.sound_dependence",
    "ear": "diagnosis.ear.hits",
    "eye": "diagnosis.eye.hits",
    "bridge s->o": "diagnosis.sound_to_object.hits",
    "bridge o->s": "diagnosis.object_to_sound.hits",
    "cIoU@0.5": "localization.ciou_success",
    "AUC": "localization.ciou_auc",
    "adaptive cIoU@0.5": "localization.adaptive_ciou_success",
    "pointing game": "localization.pointing_game",
    "R@1 a->i (class)": "retrieval.class.audio_to_image.R@1",
    "R@1 i->a (class)": "retrieval.class.image_to_audio.R@1",
    "R@1 a->i (inst.)": "retrieval.instance.audio_to_image.R@1",
    "FP AP": "false_positives.AP",
    "FP max-F1": "false_positives.max_F1",
    "sounding ROC-AUC": "false_positives.roc_auc",
    "off-screen FPR at recall 90": "false_positives.at_recall_90.fpr_by_kind.offscreen",
}


def run_variant(base, variant: str, seed: int, runs: Path) -> dict[str, float]:
    """Train (or read back) one variant and seed; returns its flattened test metrics."""
    out = runs / f"{variant}-seed{seed}"
    cfg = dataclasses.replace(ablation(base, variant), seed=seed, out_dir=str(out), final_path=None)
    card_path = out / "model.json"
    if not card_path.exists():
        train(cfg, resume=True, command=f"python -m train.ablate ({variant}, seed {seed})")
    return flatten(json.loads(card_path.read_text())["metrics"]["test"])


def media_columns(results: dict[str, list[dict[str, float]]]) -> dict[str, str]:
    """Where the cards have them: on scenes whose picture training never saw, pointing game and cIoU@0.5
    next to the best audio-blind pointing and the oracle box's cIoU@0.5; then pointing game per group of
    seen / held-out training media."""
    prefix = "localization_by_media."
    groups = sorted({key[len(prefix):].rsplit(".", 1)[0] for runs in results.values() for r in runs for key in r
                     if key.startswith(prefix)} - {PICTURE_NOT_SEEN})
    if not groups:
        return {}
    pooled = f"{prefix}{PICTURE_NOT_SEEN}."
    return {"pointing (picture not seen)": pooled + "pointing_game",
            "blind pointing (same)": pooled + "blind_pointing_game",
            "cIoU@0.5 (picture not seen)": pooled + "ciou_success",
            "oracle cIoU@0.5 (same)": pooled + "oracle_ciou_success",
            **{f"pointing ({group})": f"{prefix}{group}.pointing_game" for group in groups}}


def mean_std_by_variant(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """variant -> column -> [mean, std] over seeds (nan where a run lacks the metric); the columns that
    no run has (the switch test on data other than ours) are left out."""
    table = {}
    found = {key for runs in results.values() for r in runs for key in r}
    columns = {title: key for title, key in {**COLUMNS, **media_columns(results)}.items() if key in found}
    for variant, runs in results.items():
        table[variant] = {}
        for title, key in columns.items():
            values = np.array([r.get(key, np.nan) for r in runs], dtype=np.float64)
            table[variant][title] = [float(np.mean(values)), float(np.std(values))]
    return table


def markdown(table: dict[str, dict[str, list[float]]], seeds: list[int], steps: int) -> str:
    columns = list(next(iter(table.values())))
    head = "| variant | " + " | ".join(columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    fmt = (lambda m, s: f"{m:.1f}") if len(seeds) == 1 else (lambda m, s: f"{m:.1f} ± {s:.1f}")
    rows = [f"| {v} | " + " | ".join(fmt(*cols[c]) for c in columns) + " |" for v, cols in table.items()]
    note = (f"Test split, {steps} steps per run, seeds {', '.join(map(str, seeds))}"
            f"{' (mean ± std)' if len(seeds) > 1 else ''}; all numbers in %.")
    return "\n".join([note, "", head, rule, *rows]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.ablate", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="data root with train/ val/ test/ splits")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--out", type=Path, default=Path("ablation.md"))
    parser.add_argument("--base", default="cpu", help="the recipe the variants change (preset or JSON)")
    parser.add_argument("--variants", nargs="+", default=list(ABLATIONS), choices=[*ABLATIONS, *VISION_ABLATIONS])
    parser.add_argument("--runs", type=Path, default=Path("runs/ablate"), help="folder of the runs")
    parser.add_argument("--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        base = load_config(args.base, [f"data_root={args.root}", f"steps={args.steps}", *args.override])
        results = {v: [run_variant(base, v, s, args.runs) for s in args.seeds] for v in args.variants}
    except AVDemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = mean_std_by_variant(results)
    text = markdown(table, args.seeds, args.steps)
    atomic_write(args.out, lambda p: p.write_text(text))
    atomic_write(args.out.with_suffix(".json"), lambda p: p.write_text(json.dumps(
        {"steps": args.steps, "seeds": args.seeds, "base": args.base, "summary": table,
         "runs": {v: dict(zip(map(str, args.seeds), r)) for v, r in results.items()}}, indent=2)))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
