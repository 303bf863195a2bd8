"""Colour descriptors: a figure's colours, not its backdrop's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import pipeline.color as color
from pipeline.color import backdrop_weights, image_histogram, integral_histogram, region_histograms

LIME, MINT, BLUE = (170, 230, 60), (120, 225, 190), (60, 90, 220)


def figure(fill: tuple[int, int, int], backdrop: tuple[int, int, int], size: int, r: int):
    """A round figure of ``fill`` (blue eyes) of radius ``r`` centred on a ``backdrop``."""
    img = Image.new("RGB", (size, size), backdrop)
    d = ImageDraw.Draw(img)
    c = size // 2
    d.ellipse((c - r, c - r, c + r, c + r), fill=fill, outline=(40, 30, 30), width=3)
    for dx in (-r // 3, r // 3):
        d.ellipse((c + dx - r // 8, c - r // 4, c + dx + r // 8, c), fill=BLUE)
    return img


def test_a_backdrop_colour_is_weighted_down_and_a_figure_colour_is_not() -> None:
    img = figure(LIME, MINT, 320, 40)
    w = backdrop_weights(integral_histogram(img))
    bins = {name: color._pixel_bins(Image.new("RGB", (8, 8), rgb))[0, 0] for name, rgb in
            (("lime", LIME), ("mint", MINT))}  # fmt: skip
    assert w[bins["mint"]] < 0.1  # fills the ring
    assert w[bins["lime"]] == pytest.approx(1.0)  # absent from it


def test_a_small_figure_reads_as_its_own_colours_not_its_backdrops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lime figure on a mint backdrop, looked at through a region three times its size
    (mostly backdrop), is nearer the lime character's reference than the mint one's; with
    the backdrop counted in full it was the other way round."""
    frame = figure(LIME, MINT, 360, 30)
    lime_ref, mint_ref = (
        figure(LIME, (255, 255, 255), 224, 90),
        figure(MINT, (255, 255, 255), 224, 90),
    )
    box = (180 - 90, 180 - 90, 180 + 90, 180 + 90)

    def nearer_lime() -> bool:
        region = region_histograms(frame, [box])[0]
        return float(region @ image_histogram(lime_ref)) > float(region @ image_histogram(mint_ref))

    assert nearer_lime()
    monkeypatch.setattr(color, "BACKDROP_SHARE", np.inf)  # every colour weighted 1
    assert not nearer_lime()
