"""Audio contact sheets, for checking the pack's recordings by ear at scale: per category a PNG of
spectrogram thumbnails (labelled with file, source and event contrast; faint events framed red) and an
OGG preview playing the first PREVIEW_S of each recording, in the sheet's order, with a short gap."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from avdemo.data.catalog import SAMPLE_RATE, Media
from avdemo.data.sound_checks import HOP, EventCheck, event_stats, power_spectrogram


@dataclass(frozen=True)
class SoundSheetConfig:
    """Layout of the sheets and of the previews."""
    cell_w: int = 200
    cell_h: int = 110
    columns: int = 6
    seconds: float = 3.0            # time span of a thumbnail
    preview_s: float = 1.5
    gap_s: float = 0.3


def spectrogram_thumb(wav: np.ndarray, width: int, height: int, seconds: float) -> Image.Image:
    """Log-power spectrogram (0-8 kHz, the first ``seconds``) as a grey image, loud = dark."""
    power = power_spectrogram(wav[: int(seconds * SAMPLE_RATE)])
    db = 10 * np.log10(power)
    db = np.clip((db - (db.max() - 60)) / 60, 0, 1)[::-1]                       # low frequencies at the bottom
    frames = int(seconds * SAMPLE_RATE / HOP) + 1
    canvas = np.zeros((db.shape[0], max(frames, db.shape[1])), np.float32)
    canvas[:, : db.shape[1]] = db
    return Image.fromarray((255 - canvas * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)


def write_sound_sheets(media: list[Media], pack: Path, sheets: Path,
                       cfg: SoundSheetConfig = SoundSheetConfig(), check: EventCheck = EventCheck()) -> list[Path]:
    """``<category>_sounds.png`` and ``<category>_sounds.ogg`` per category into ``sheets``."""
    sheets.mkdir(parents=True, exist_ok=True)
    by_category = defaultdict(list)
    for m in media:
        if m.kind == "sound":
            by_category[m.category].append(m)
    written = []
    for category, items in sorted(by_category.items()):
        rows = -(-len(items) // cfg.columns)
        sheet = Image.new("RGB", (cfg.columns * cfg.cell_w, rows * (cfg.cell_h + 30) + 24), "white")
        draw = ImageDraw.Draw(sheet)
        recordings = len({m.recording for m in items})
        draw.text((4, 4), f"{category}: {len(items)} files, {recordings} recordings "
                          f"(preview: {cfg.preview_s} s each in this order)", fill="black")
        gap = np.zeros(int(cfg.gap_s * SAMPLE_RATE), np.float32)
        preview = []
        for k, m in enumerate(items):
            wav, _ = sf.read(pack / m.file, dtype="float32")
            x, y = k % cfg.columns * cfg.cell_w, k // cfg.columns * (cfg.cell_h + 30) + 24
            sheet.paste(spectrogram_thumb(wav, cfg.cell_w - 8, cfg.cell_h, cfg.seconds), (x + 4, y))
            stats = event_stats(wav)
            if stats.faint(check):
                draw.rectangle((x + 3, y - 1, x + cfg.cell_w - 4, y + cfg.cell_h), outline="red", width=2)
            draw.text((x + 4, y + cfg.cell_h + 2), f"{k + 1}. {Path(m.file).stem[:26]}", fill="black")
            draw.text((x + 4, y + cfg.cell_h + 14), f"{m.style} {len(wav) / SAMPLE_RATE:.1f}s "
                                                    f"{stats.contrast_db:.0f}dB", fill="black")
            preview += [wav[: int(cfg.preview_s * SAMPLE_RATE)], gap]
        stem = sheets / f"{category.split(',')[0].replace(' ', '_')}_sounds"
        sheet.save(stem.with_suffix(".png"), optimize=True)
        sf.write(stem.with_suffix(".ogg"), np.concatenate(preview), SAMPLE_RATE, format="OGG", subtype="VORBIS")
        written += [stem.with_suffix(".png"), stem.with_suffix(".ogg")]
    return written
