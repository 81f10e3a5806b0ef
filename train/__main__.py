"""``python -m train --config cpu [--override key=value ...] [--resume] [--stop-after N]``.

Multi-process: ``torchrun --nproc_per_node N -m train ...`` (NCCL on GPUs, gloo on CPU).
"""
from __future__ import annotations

import argparse
import json
import sys

from avdemo.errors import AVDemoError

from .config import PRESETS, load_config
from .loop import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu", help=f"a preset ({', '.join(PRESETS)}) or a JSON file")
    parser.add_argument("--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="e.g. steps=300 lr=1e-3 model.image_size=96 image_aug.blur_p=0")
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/latest.pt if present")
    parser.add_argument("--stop-after", type=int, default=None, metavar="STEPS",
                        help="stop after this many steps with a resumable checkpoint (time-limited jobs)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.override)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        path = train(cfg, resume=args.resume, stop_after=args.stop_after)
    except AVDemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if path is not None:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
