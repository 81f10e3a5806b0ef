"""avdemo.overlay: normalisation modes, colour maps, blending, contours and sample cards."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from avdemo.errors import AVDemoError
from avdemo.overlay import (blend, colorize, contour, draw_contour, normalise, overlay, sample_card,
                            value_range)


@pytest.fixture
def maps() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 0.6, size=(5, 12, 16)).astype(np.float32)


def test_frame_normalisation_always_spans_0_to_1_even_for_a_faint_map(maps):
    faint = maps * 0.01 + 0.3                                    # what silence tends to look like
    out = normalise(faint, "frame")
    assert np.allclose(out.min(axis=(1, 2)), 0) and np.allclose(out.max(axis=(1, 2)), 1)


def test_absolute_normalisation_keeps_a_constant_map_flat_at_its_cosine():
    out = normalise(np.full((8, 8), 0.3, np.float32), "absolute")
    assert np.allclose(out, 0.3)
    assert np.allclose(normalise(np.full((8, 8), 0.3, np.float32), "frame"), 0)   # constant: no hot spot


def test_clip_normalisation_uses_one_scale_for_all_frames(maps):
    maps[1] *= 0.5                                               # a quieter frame stays darker
    out = normalise(maps, "clip")
    assert out.min() == 0 and out.max() == 1
    assert out[1].max() < 0.5
    lo, hi = value_range(maps)
    assert np.allclose(normalise(maps[2], "clip", (lo, hi)), out[2])   # rendering frame by frame agrees


def test_unknown_names_raise_user_errors(maps):
    with pytest.raises(AVDemoError, match="normalisation"):
        normalise(maps, "global")
    with pytest.raises(AVDemoError, match="colour map"):
        colorize(maps, "rainbowish")


def test_colorize_uses_the_matplotlib_colour_map_ends():
    rgb = colorize(np.array([[0.0, 1.0]]), "viridis")
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 2, 3)
    ends = np.round(matplotlib.colormaps["viridis"]([0.0, 1.0])[:, :3] * 255)
    assert np.array_equal(rgb[0], ends)


def test_blend_interpolates_between_frame_and_colours():
    frame = np.full((2, 2, 3), 200, np.uint8)
    colours = np.zeros((2, 2, 3), np.uint8)
    assert np.array_equal(blend(frame, colours, 0.0), frame)
    assert np.array_equal(blend(frame, colours, 1.0), colours)
    assert (blend(frame, colours, 0.25) == 150).all()
    with pytest.raises(AVDemoError):
        blend(frame, colours, 1.5)


def test_contour_is_the_inner_boundary_of_the_mask():
    mask = np.zeros((10, 10), bool)
    mask[2:7, 3:9] = True                                        # 5 x 6 block
    edge = contour(mask)
    assert edge.sum() == 5 * 6 - 3 * 4 and not (edge & ~mask).any()
    assert contour(mask, thickness=2).sum() == 5 * 6 - 1 * 2


def test_overlay_keeps_shape_and_dtype_and_draws_the_threshold_contour(maps):
    frames = np.zeros((5, 12, 16, 3), np.uint8)
    maps01 = normalise(maps, "frame")
    out = overlay(frames, maps01, "jet", 0.5)
    assert out.shape == frames.shape and out.dtype == np.uint8
    lined = draw_contour(out, maps01, 0.5, colour=(255, 0, 255))
    drawn = (lined == (255, 0, 255)).all(-1)
    assert drawn.any() and np.array_equal(drawn, contour(maps01 >= 0.5) & drawn)
    with pytest.raises(ValueError):
        overlay(frames[:, :8], maps01)


def test_sample_card_composes_panels_with_ground_truth_box(maps):
    image = np.full((40, 60, 3), 128, np.uint8)
    card = sample_card(image, np.kron(maps[0][:10, :15], np.ones((4, 4))), {"cIoU": 0.61, "s_A": 0.2},
                       gt_boxes=[(0.25, 0.25, 0.75, 0.75)], title="dog", side=80)
    assert card.dtype == np.uint8 and card.ndim == 3 and card.shape[2] == 3
    assert card.shape[1] >= 2 * 120                              # image and map panels, 120 px wide each
    green = (card[..., 1] > 200) & (card[..., 0] < 60) & (card[..., 2] < 60)
    assert green.sum() > 100                                     # the box outline
    with_mask = sample_card(image, np.zeros((40, 60)), {}, pred_mask=np.ones((40, 60), bool), side=80)
    assert with_mask.shape[1] > card.shape[1]                    # a third panel: the binarised map
