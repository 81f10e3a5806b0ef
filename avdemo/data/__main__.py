"""``python -m avdemo.data {pack,build,baselines,videos}``: rebuild the media pack, build the embedded
benchmark splits, score the audio-blind baselines, write the example videos."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from avdemo.data.build_pack import DEFAULT_SOUNDFONT, PACK_DIR, build_pack, stamps_from_deb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m avdemo.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    pack = sub.add_parser("pack", help="rebuild the curated media pack from Debian's tuxpaint-stamps-default")
    source = pack.add_mutually_exclusive_group(required=True)
    source.add_argument("--deb", type=Path, help="tuxpaint-stamps-default_*.deb (apt-get download tuxpaint-stamps-default)")
    source.add_argument("--stamps", type=Path, help="an extracted stamps folder (.../usr/share/tuxpaint/stamps)")
    pack.add_argument("--soundfont", type=Path, default=DEFAULT_SOUNDFONT)
    pack.add_argument("--out", type=Path, default=PACK_DIR)

    args = parser.parse_args(argv)
    if args.command == "pack":
        if args.stamps:
            print(build_pack(args.stamps, args.out, args.soundfont))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print(build_pack(stamps_from_deb(args.deb, Path(tmp)), args.out, args.soundfont))


if __name__ == "__main__":
    main()
