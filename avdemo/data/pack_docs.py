"""What the pack build writes about the pack: ATTRIBUTION.md (from the manifest; one per sub-pack too),
one picture contact sheet PNG per category, and the per-category coverage counts (distinct recordings)."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from avdemo.data.catalog import SILENT_OBJECT, Media
from avdemo.data.sources import GPL, SHARE_ALIKE, SOURCES, Source

SHEET_CELL = 112
SHEET_COLUMNS = 10
COPYRIGHT_FILES = ("tuxpaint-stamps-default", "fluid-soundfont-gm", "fluid-soundfont-gs", "timgm6mb-soundfont",
                   "openttd-opensfx", "sonic-pi-samples", "openclipart-svg", "fonts-symbola", "lomiri-sounds",
                   "deepin-sound-theme")      # top level; a sub-pack's sources' files sit in the sub-pack
PER_FILE_CREDIT = ("openttd-opensfx", "sonic-pi-samples", "openclipart-svg", "lomiri-sounds")
LICENCE_FILES = {
    "GPL-2.0-or-later": "LICENSE-GPL-2.txt", "GPL-2.0-only": "LICENSE-GPL-2.txt",
    "MIT": "LICENSE-MIT-fluentui-emoji.txt",
    "Apache-2.0": "LICENSE-Apache-2.0.txt", "CC-BY-4.0": "LICENSE-CC-BY-4.0.txt", "CC-BY-3.0": "LICENSE-CC-BY-3.0.txt",
    "CC0-1.0": "LICENSE-CC0-1.0.txt", "GPL-3.0-only": "LICENSE-GPL-3.txt", "CC-BY-SA-3.0": "LICENSE-CC-BY-SA-3.0.txt",
}
# The licence texts each sub-pack carries; a text only sub-packs need is not at the top level.
SUBPACK_LICENCES = {SHARE_ALIKE: ("LICENSE-CC-BY-SA-3.0.txt",), GPL: ("LICENSE-GPL-2.txt",)}
SUBPACK_NOTES = {
    SHARE_ALIKE: "Share-alike: these recordings (0 A.D., MegaGlest) are CC-BY-SA-3.0, and so is whatever is "
                 "built from them (benchmark scenes and example clips whose audio uses them): share those "
                 "under CC-BY-SA-3.0 too, crediting the authors below.",
    GPL: "GPL: these recordings (Widelands) are GPL-2.0-or-later; the licence text and the Debian copyright "
         "file are next to them.",
}
CHANGES = ("Changes made by the build (avdemo/data/build_pack.py): SVGs rasterised with rsvg-convert "
           "(Symbola glyphs with FreeType), every picture cropped to its alpha box, shrunk to at most 192 px "
           "and reduced to 256 colours (alpha kept); every sound downmixed to mono, resampled to 16 kHz, trimmed "
           "of leading and trailing silence, cut to at most 6 s, loudness-normalised and encoded as OGG Vorbis; "
           "soundfont sounds are fluidsynth renders of generated phrases (recipe in `manifest.csv`).")


@dataclass(frozen=True)
class Coverage:
    """Per category: pictures, distinct recordings (renders of one sample and cuts of one file count once)
    and sound files, and how many distinct packages each comes from."""
    pictures: int
    picture_sources: int
    sounds: int
    sound_sources: int
    sound_files: int


def coverage(media: list[Media]) -> dict[str, Coverage]:
    """Counts per sounding category (silent objects left out)."""
    by = defaultdict(list)
    for m in media:
        if not m.silent:
            by[(m.category, m.kind)].append(m)
    categories = sorted({c for c, _ in by})
    out = {}
    for c in categories:
        pictures, sounds = by[(c, "picture")], by[(c, "sound")]
        recordings = {(m.package, m.recording or m.original) for m in sounds}
        out[c] = Coverage(len(pictures), len({m.package for m in pictures}), len(recordings),
                          len({package for package, _ in recordings}), len(sounds))
    return out


def _source(package: str) -> Source:
    return next(s for s in SOURCES.values() if s.package == package)


def _package_section(package: str, rows: list[Media]) -> list[str]:
    source = _source(package)
    licences = sorted({m.licence for m in rows})
    where = f"{source.subpack}/" if source.subpack else ""
    files = [f"`{where}{LICENCE_FILES[lic]}`" for lic in licences if lic in LICENCE_FILES]
    kinds = Counter(m.kind for m in rows)
    lines = [f"## {package} {source.version} ({source.registry})",
             f"- {kinds['picture']} pictures, {kinds['sound']} sounds; style tag(s): "
             f"{', '.join(sorted({m.style for m in rows}))}.",
             f"- Author: {source.author}. Upstream: {source.url}.",
             f"- Licence: {', '.join(licences)}" + (f" (text: {', '.join(files)})." if files else ".")]
    key = package.split("/")[-1]
    if key in COPYRIGHT_FILES or source.subpack:
        lines.append(f"- The Debian copyright file is `{where}COPYRIGHT-{key}.txt`.")
    if source.subpack:
        lines.append(f"- In the `{source.subpack}/` sub-pack. {SUBPACK_NOTES[source.subpack]}")
    if package in PER_FILE_CREDIT or source.subpack:
        lines.append("- Per file (pack file: original; author; licence):")
        lines += [f"  - `{m.file}`: {m.original.split(' License:')[0]}; {m.author}; {m.licence}" for m in rows]
    return lines + [""]


def write_attribution(media: list[Media], out: Path, dropped: list[str], by_ear: list[str] = ()) -> Path:
    """ATTRIBUTION.md: one section per source package, generated from the manifest rows; each sub-pack
    gets an ATTRIBUTION.md of its own packages."""
    by_package = defaultdict(list)
    for m in media:
        by_package[m.package].append(m)
    for subpack, note in SUBPACK_NOTES.items():
        packages = sorted(p for p in by_package if _source(p).subpack == subpack)
        lines = [f"# The `{subpack}` sub-pack of the embedded media pack", "", note, "",
                 "Generated by `python -m avdemo.data pack`; the top-level `ATTRIBUTION.md` and `manifest.csv` "
                 "cover the whole pack.", "", CHANGES, ""]
        for package in packages:
            lines += _package_section(package, sorted(by_package[package], key=lambda m: m.file))
        if (out / subpack).is_dir():
            (out / subpack / "ATTRIBUTION.md").write_text("\n".join(lines))
    lines = ["# The embedded media pack: sources, licences and credits", "",
             "Generated from `manifest.csv` by `python -m avdemo.data pack` (avdemo/data/build_pack.py); do not edit.",
             "Every file's package, version, original name, licence, author, style tag and source recording "
             "are in `manifest.csv`.",
             "No non-commercial material is included. Two sub-packs are licensed apart from the rest, each "
             "with its licence text, its packages' Debian copyright files and an ATTRIBUTION.md:", "",
             *(f"- `{subpack}/`: {note}" for subpack, note in SUBPACK_NOTES.items()), "", CHANGES, "",
             "Credits required by the licences: Noto Emoji © Google Inc. (Apache-2.0); Twemoji © Twitter, Inc. and "
             "other contributors (CC BY 4.0); Fluent Emoji © Microsoft Corporation (MIT); EmojiOne / EmojiTwo "
             "© Emoji One (CC BY 4.0); FxEmoji © 2015 Mozilla Foundation (visual design CC BY 4.0, per its "
             "LICENSE.md; Iconify lists the code licence, Apache-2.0); Streamline Emojis © Streamline / webalys "
             "(CC BY 4.0); game-icons © game-icons.net contributors: Lorc, Delapouite and others, per icon on "
             "https://game-icons.net/ (CC BY 3.0; the Iconify package carries no per-icon author). All were "
             "rasterised and scaled (changes above).", ""]
    for package in sorted(by_package):
        lines += _package_section(package, sorted(by_package[package], key=lambda m: m.file))
    lines += [f"Dropped by the build as content duplicates or pictures without an outline: {len(dropped)}.", ""]
    lines += ["Recordings whose event is faint against their own background (avdemo/data/sound_checks.py), "
              f"cut to the event or dropped: {len(by_ear)}."] + [f"- {note}" for note in by_ear] + [""]
    path = out / "ATTRIBUTION.md"
    path.write_text("\n".join(lines))
    return path


def _checker(size: int) -> Image.Image:
    tile = (np.indices((size, size)).sum(0) // 8 % 2 * 40 + 200).astype(np.uint8)
    return Image.fromarray(np.stack([tile] * 3, -1))


def write_contact_sheets(media: list[Media], pack: Path, sheets: Path) -> list[Path]:
    """One PNG per category: every picture on a checkerboard, with its style tag underneath."""
    sheets.mkdir(parents=True, exist_ok=True)
    by_category = defaultdict(list)
    for m in media:
        if m.kind == "picture" and m.category != SILENT_OBJECT:
            by_category[m.category].append(m)
    written = []
    for category, items in sorted(by_category.items()):
        rows = -(-len(items) // SHEET_COLUMNS)
        sheet = Image.new("RGB", (SHEET_COLUMNS * SHEET_CELL, rows * SHEET_CELL + 24), "white")
        draw = ImageDraw.Draw(sheet)
        draw.text((4, 4), f"{category}: {len(items)} pictures", fill="black")
        for k, m in enumerate(items):
            x, y = k % SHEET_COLUMNS * SHEET_CELL, k // SHEET_COLUMNS * SHEET_CELL + 24
            cell = _checker(SHEET_CELL - 16)
            picture = Image.open(pack / m.file).convert("RGBA")
            picture.thumbnail((SHEET_CELL - 20, SHEET_CELL - 20))
            cell.paste(picture, ((cell.width - picture.width) // 2, (cell.height - picture.height) // 2), picture)
            sheet.paste(cell, (x + 8, y))
            draw.text((x + 8, y + SHEET_CELL - 16), m.style[:16], fill="black")
        path = sheets / f"{category.split(',')[0].replace(' ', '_')}.png"
        sheet.save(path, optimize=True)
        written.append(path)
    return written
