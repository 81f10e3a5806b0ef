"""``python -m avdemo.data {pack,build,baselines,videos}``: rebuild the media pack, build the embedded
benchmark splits (with their baseline scores), score a split's audio-blind baselines, write the example
videos."""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from avdemo.data.baselines import baseline_table, write_baselines
from avdemo.data.build_pack import DEFAULT_SOUNDFONT, PACK_DIR, build_pack, stamps_from_deb
from avdemo.data.catalog import load_catalog
from avdemo.data.splits import DEFAULT_ROOT, DEFAULT_SIZES, SPLITS, build_split
from avdemo.data.videos import EXAMPLES_DIR, write_examples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m avdemo.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    pack = sub.add_parser("pack", help="rebuild the curated media pack from Debian's tuxpaint-stamps-default")
    source = pack.add_mutually_exclusive_group(required=True)
    source.add_argument("--deb", type=Path, help="tuxpaint-stamps-default_*.deb (apt-get download tuxpaint-stamps-default)")
    source.add_argument("--stamps", type=Path, help="an extracted stamps folder (.../usr/share/tuxpaint/stamps)")
    pack.add_argument("--soundfont", type=Path, default=DEFAULT_SOUNDFONT)
    pack.add_argument("--out", type=Path, default=PACK_DIR)

    build = sub.add_parser("build", help="generate the benchmark splits (VGG-SS layout) and their baselines")
    build.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    for split in SPLITS:
        build.add_argument(f"--{split}", type=int, default=DEFAULT_SIZES[split], metavar="N",
                           help=f"scenes in the {split} split (0 skips it; default {DEFAULT_SIZES[split]})")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--workers", type=int, default=2)

    base = sub.add_parser("baselines", help="score the audio-blind baselines of a built split folder")
    base.add_argument("folder", type=Path)

    videos = sub.add_parser("videos", help="write the example clips (MP4 + per-frame ground truth JSON)")
    videos.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    videos.add_argument("--seed", type=int, default=0)

    args = parser.parse_args(argv)
    if args.command == "pack":
        if args.stamps:
            print(build_pack(args.stamps, args.out, args.soundfont))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print(build_pack(stamps_from_deb(args.deb, Path(tmp)), args.out, args.soundfont))
    elif args.command == "build":
        catalog = load_catalog()
        for split in SPLITS:
            if getattr(args, split) > 0:
                folder = build_split(split, getattr(args, split), args.out, args.seed, workers=args.workers,
                                     catalog=catalog)
                built = json.loads((folder / "build.json").read_text())
                print(f"{folder}: {built['scenes']} scenes in {built['seconds']} s ({built['scenes_per_s']} scenes/s)")
                if split != "train":
                    _print_baselines(write_baselines(folder))
    elif args.command == "baselines":
        _print_baselines(write_baselines(args.folder))
    elif args.command == "videos":
        for path in write_examples(args.out, args.seed):
            print(f"{path} ({path.stat().st_size // 1024} KB)")


def _print_baselines(path: Path) -> None:
    result = json.loads(path.read_text())
    print(f"{path}\n{json.dumps(result['stats'])}\n{baseline_table(result['scores'])}")


if __name__ == "__main__":
    main()
