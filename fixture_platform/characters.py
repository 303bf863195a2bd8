"""Original demo characters, drawn with PIL shapes only.

Three characters are "registered" (the demo registers them and expects them to be found);
the others are distractors that appear in fixture videos but are never registered. Every
character has its own silhouette, palette, pattern and face so that image embeddings tell
them apart, and each can be drawn in several poses (rotation, squash/stretch, arm
positions, eye and mouth shapes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

Point = tuple[float, float]
Color = tuple[int, int, int] | tuple[int, int, int, int]

SUPERSAMPLE = 3  # drawn this many times larger, then scaled down (antialiasing)
PAD = 1.25  # the output square is this much larger than the character's drawing area


@dataclass(frozen=True)
class DemoCharacter:
    """A demo character: ``key`` is a stable ASCII id, ``name`` the registry name."""

    key: str
    name: str
    franchise: str
    aliases: tuple[str, ...]
    registered: bool


DEMO_CHARACTERS: list[DemoCharacter] = [
    DemoCharacter(
        "pompom", "Pompom", "Charwatch Demo", ("ポムポム", "Pom-Pom", "pompom_chan"), True
    ),
    DemoCharacter(
        "kitsumaru", "Kitsumaru", "Charwatch Demo", ("キツマル", "Kitsu", "kitsumaru_fox"), True
    ),
    DemoCharacter(
        "gearbolt", "Gearbolt", "Charwatch Demo", ("ギアボルト", "Gear-Bolt", "GB-01"), True
    ),
    DemoCharacter("mossling", "Mossling", "Unregistered Demo", ("モスリング",), False),
    DemoCharacter("jellybloom", "Jellybloom", "Unregistered Demo", ("ジェリーブルーム",), False),
    DemoCharacter("inkpaw", "Inkpaw", "Unregistered Demo", ("インクポー",), False),
]

REGISTERED_KEYS: tuple[str, ...] = tuple(c.key for c in DEMO_CHARACTERS if c.registered)
DISTRACTOR_KEYS: tuple[str, ...] = tuple(c.key for c in DEMO_CHARACTERS if not c.registered)


def character_by_key(key: str) -> DemoCharacter:
    """The character with this key (``KeyError`` with the known keys otherwise)."""
    for c in DEMO_CHARACTERS:
        if c.key == key:
            return c
    raise KeyError(f"unknown demo character {key!r} (known: {', '.join(_DRAWERS)})")


# ---------------------------------------------------------------------------------------------
# poses


@dataclass(frozen=True)
class Pose:
    """How a character stands: degrees CCW, height/width stretch, arm angles (0 = hanging down,
    180 = straight up), eye and mouth shapes."""

    rotation: float
    stretch: float
    arm_left: float
    arm_right: float
    eyes: str  # open | happy | wink | closed | wide
    mouth: str  # smile | open | o | flat


_POSES: tuple[Pose, ...] = (
    Pose(0, 1.00, 25, 25, "open", "smile"),
    Pose(-8, 1.00, 30, 150, "happy", "open"),
    Pose(0, 1.12, 160, 160, "open", "open"),
    Pose(0, 0.86, 85, 85, "closed", "smile"),
    Pose(12, 1.00, 45, 110, "wink", "smile"),
    Pose(0, 1.05, 125, 125, "wide", "o"),
    Pose(-15, 0.95, 95, 35, "happy", "smile"),
    Pose(6, 0.92, 10, 10, "closed", "flat"),
)
POSE_COUNT = len(_POSES)


def pose_params(pose: int) -> Pose:
    """The pose for an index; indexes past the table reuse it with a different tilt."""
    base = _POSES[pose % POSE_COUNT]
    k = pose // POSE_COUNT
    if k == 0:
        return base
    tilt = ((k * 37) % 25) - 12
    return Pose(
        base.rotation + tilt,
        base.stretch * (1.0 + 0.03 * ((k % 3) - 1)),
        base.arm_left,
        base.arm_right,
        base.eyes,
        base.mouth,
    )


# ---------------------------------------------------------------------------------------------
# drawing primitives (unit coordinates: 0..1 across the square canvas, y down)


class _Pen:
    """Draws in unit coordinates on the inner ``span`` px square of ``img`` (the rest is margin)."""

    def __init__(self, img: Image.Image, span: int) -> None:
        self.img = img
        self.s = span
        self.off = (img.width - span) / 2
        self.d = ImageDraw.Draw(img)

    def px(self, v: float) -> float:
        return v * self.s

    def pt(self, p: Point) -> tuple[float, float]:
        return (self.off + p[0] * self.s, self.off + p[1] * self.s)

    def lw(self, w: float) -> int:
        return max(1, round(w * self.s))

    def ellipse(
        self,
        c: Point,
        rx: float,
        ry: float,
        fill: Color | None,
        outline: Color | None = None,
        width: float = 0.0,
    ) -> None:
        x, y = self.pt(c)
        box = (x - self.px(rx), y - self.px(ry), x + self.px(rx), y + self.px(ry))
        self.d.ellipse(box, fill=fill, outline=outline, width=self.lw(width) if outline else 0)

    def rect(
        self,
        p0: Point,
        p1: Point,
        fill: Color | None,
        outline: Color | None = None,
        width: float = 0.0,
        radius: float = 0.0,
    ) -> None:
        box = (*self.pt(p0), *self.pt(p1))
        self.d.rounded_rectangle(
            box,
            radius=self.px(radius),
            fill=fill,
            outline=outline,
            width=self.lw(width) if outline else 0,
        )

    def poly(
        self,
        pts: Sequence[Point],
        fill: Color | None,
        outline: Color | None = None,
        width: float = 0.0,
    ) -> None:
        self.d.polygon(
            [self.pt(p) for p in pts],
            fill=fill,
            outline=outline,
            width=self.lw(width) if outline else 0,
        )

    def line(self, pts: Sequence[Point], fill: Color, width: float) -> None:
        self.d.line([self.pt(p) for p in pts], fill=fill, width=self.lw(width), joint="curve")
        r = width / 2
        for p in (pts[0], pts[-1]):
            self.ellipse(p, r, r, fill)

    def arc(
        self, c: Point, rx: float, ry: float, start: float, end: float, fill: Color, width: float
    ):
        x, y = self.pt(c)
        box = (x - self.px(rx), y - self.px(ry), x + self.px(rx), y + self.px(ry))
        self.d.arc(box, start, end, fill=fill, width=self.lw(width))

    def rotated_ellipse(
        self,
        c: Point,
        rx: float,
        ry: float,
        angle: float,
        fill: Color | None,
        outline: Color | None = None,
        width: float = 0.0,
    ) -> None:
        self.poly(_ellipse_points(c, rx, ry, angle), fill, outline, width)


def _ellipse_points(c: Point, rx: float, ry: float, angle: float, n: int = 48) -> list[Point]:
    a = math.radians(angle)
    ca, sa = math.cos(a), math.sin(a)
    out = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        out.append((c[0] + x * ca - y * sa, c[1] + x * sa + y * ca))
    return out


def _arm_dir(angle: float, side: int) -> Point:
    """Unit vector for an arm: side -1 = character's left on screen (viewer's left)."""
    a = math.radians(angle)
    return (side * math.sin(a), math.cos(a))


def _capsule(pen: _Pen, p0: Point, p1: Point, width: float, fill: Color, outline: Color, ow: float):
    """A rounded limb from p0 to p1 with an outline."""
    pen.line([p0, p1], outline, width + 2 * ow)
    pen.line([p0, p1], fill, width)


def _limb(
    pen: _Pen,
    shoulder: Point,
    angle: float,
    side: int,
    length: float,
    width: float,
    fill: Color,
    outline: Color,
    ow: float,
    hand: Color | None = None,
    hand_r: float = 0.0,
) -> Point:
    dx, dy = _arm_dir(angle, side)
    end = (shoulder[0] + dx * length, shoulder[1] + dy * length)
    _capsule(pen, shoulder, end, width, fill, outline, ow)
    if hand is not None:
        pen.ellipse(end, hand_r, hand_r, hand, outline, ow)
    return end


def _star(c: Point, r_out: float, r_in: float, points: int = 5, rot: float = -90) -> list[Point]:
    out = []
    for i in range(points * 2):
        r = r_out if i % 2 == 0 else r_in
        a = math.radians(rot + i * 180 / points)
        out.append((c[0] + r * math.cos(a), c[1] + r * math.sin(a)))
    return out


def _eye(
    pen: _Pen,
    c: Point,
    rx: float,
    ry: float,
    kind: str,
    color: Color,
    ow: float,
    iris: Color | None = None,
    right: bool = False,
) -> None:
    """Cartoon eyes: filled oval with highlights, or arcs for happy/closed/wink."""
    if kind == "wink" and right:
        kind = "happy"
    elif kind == "wink":
        kind = "open"
    if kind == "happy":
        pen.arc((c[0], c[1] + ry * 0.4), rx * 1.1, ry * 0.9, 200, 340, color, ow * 1.2)
        return
    if kind == "closed":
        pen.arc((c[0], c[1] - ry * 0.5), rx * 1.1, ry * 0.8, 20, 160, color, ow * 1.2)
        return
    if kind == "wide":
        rx, ry = rx * 1.25, ry * 1.2
    pen.ellipse(c, rx, ry, color)
    if iris is not None:
        pen.ellipse((c[0], c[1] + ry * 0.15), rx * 0.62, ry * 0.62, iris)
        pen.ellipse((c[0], c[1] + ry * 0.2), rx * 0.3, ry * 0.32, color)
    pen.ellipse((c[0] - rx * 0.35, c[1] - ry * 0.4), rx * 0.35, ry * 0.28, (255, 255, 255))
    pen.ellipse((c[0] + rx * 0.35, c[1] + ry * 0.35), rx * 0.16, ry * 0.13, (255, 255, 255))


def _mouth(pen: _Pen, c: Point, w: float, kind: str, color: Color, ow: float, inner: Color):
    if kind == "open":
        pen.poly(
            [(c[0] - w, c[1] - w * 0.2), (c[0] + w, c[1] - w * 0.2), (c[0], c[1] + w * 0.9)],
            inner,
            color,
            ow * 0.8,
        )
        pen.ellipse((c[0], c[1] + w * 0.45), w * 0.35, w * 0.22, (255, 120, 140))
    elif kind == "o":
        pen.ellipse((c[0], c[1] + w * 0.2), w * 0.45, w * 0.55, inner, color, ow * 0.8)
    elif kind == "flat":
        pen.line([(c[0] - w * 0.5, c[1]), (c[0] + w * 0.5, c[1])], color, ow)
    else:
        pen.arc((c[0], c[1] - w * 0.35), w, w * 0.8, 25, 155, color, ow)


# ---------------------------------------------------------------------------------------------
# the characters

OUTLINE_DARK = (40, 24, 40)


def _draw_pompom(pen: _Pen, p: Pose) -> None:
    ol, ow = (91, 35, 64), 0.012
    pink, deep, cream, gold = (255, 143, 184), (217, 69, 122), (255, 241, 214), (255, 210, 63)
    # antennae with pom-pom balls
    for side in (-1, 1):
        base = (0.5 + side * 0.08, 0.32)
        tip = (0.5 + side * 0.15, 0.13)
        mid = (0.5 + side * 0.07, 0.2)
        pen.line([base, mid, tip], ol, 0.016)
        for i in range(8):
            a = 2 * math.pi * i / 8
            pen.ellipse(
                (tip[0] + 0.045 * math.cos(a), tip[1] + 0.045 * math.sin(a)), 0.03, 0.03, gold
            )
        pen.ellipse(tip, 0.05, 0.05, gold, ol, ow * 0.7)
        pen.ellipse((tip[0] - 0.015, tip[1] - 0.015), 0.015, 0.012, (255, 246, 190))
    # feet, arms behind the body
    for side in (-1, 1):
        pen.ellipse((0.5 + side * 0.12, 0.82), 0.09, 0.05, deep, ol, ow)
    _limb(pen, (0.3, 0.6), p.arm_left, -1, 0.17, 0.07, pink, ol, ow, deep, 0.04)
    _limb(pen, (0.7, 0.6), p.arm_right, 1, 0.17, 0.07, pink, ol, ow, deep, 0.04)
    # body with polka dots and belly
    pen.ellipse((0.5, 0.56), 0.27, 0.26, pink, ol, ow)
    for c in ((0.33, 0.44), (0.67, 0.44), (0.29, 0.64), (0.71, 0.64), (0.4, 0.35), (0.6, 0.35)):
        pen.ellipse(c, 0.025, 0.025, (255, 209, 227))
    pen.ellipse((0.5, 0.68), 0.15, 0.11, cream, ol, ow * 0.6)
    pen.poly(_star((0.5, 0.37), 0.045, 0.02), gold, ol, ow * 0.5)
    # face
    for side in (-1, 1):
        _eye(pen, (0.5 + side * 0.09, 0.5), 0.045, 0.06, p.eyes, (30, 20, 30), ow, right=side > 0)
        pen.ellipse((0.5 + side * 0.175, 0.58), 0.035, 0.022, (255, 90, 138))
    _mouth(pen, (0.5, 0.59), 0.035, p.mouth, ol, ow, (150, 30, 70))


def _draw_kitsumaru(pen: _Pen, p: Pose) -> None:
    ol, ow = (70, 32, 10), 0.012
    orange, white, brown = (255, 138, 30), (255, 250, 240), (90, 45, 12)
    teal, teal_dark = (24, 183, 176), (10, 120, 116)
    # big tail behind, white tip
    pen.rotated_ellipse((0.71, 0.6), 0.11, 0.23, 35, orange, ol, ow)
    pen.rotated_ellipse((0.81, 0.44), 0.065, 0.09, 35, white, ol, ow * 0.7)
    # feet and arms
    for side in (-1, 1):
        pen.ellipse((0.5 + side * 0.09, 0.84), 0.07, 0.04, brown, ol, ow)
    _limb(pen, (0.36, 0.62), p.arm_left, -1, 0.16, 0.06, orange, ol, ow, brown, 0.035)
    _limb(pen, (0.64, 0.62), p.arm_right, 1, 0.16, 0.06, orange, ol, ow, brown, 0.035)
    # body and chest
    pen.ellipse((0.5, 0.68), 0.18, 0.17, orange, ol, ow)
    pen.ellipse((0.5, 0.72), 0.1, 0.11, white)
    # ears
    for side in (-1, 1):
        outer = [(0.5 + side * 0.2, 0.36), (0.5 + side * 0.17, 0.08), (0.5 + side * 0.04, 0.3)]
        inner = [(0.5 + side * 0.17, 0.31), (0.5 + side * 0.165, 0.15), (0.5 + side * 0.08, 0.28)]
        pen.poly(outer, orange, ol, ow)
        pen.poly(inner, brown)
    # head with white muzzle
    pen.ellipse((0.5, 0.41), 0.22, 0.16, orange, ol, ow)
    pen.poly([(0.31, 0.45), (0.69, 0.45), (0.5, 0.565)], white)
    pen.ellipse((0.5, 0.47), 0.11, 0.07, white)
    # forehead mark
    pen.poly([(0.5, 0.27), (0.525, 0.315), (0.5, 0.355), (0.475, 0.315)], (224, 36, 94))
    # scarf with hanging end and stripes
    pen.rect((0.34, 0.535), (0.66, 0.6), teal, ol, ow, radius=0.03)
    pen.poly([(0.56, 0.58), (0.66, 0.58), (0.7, 0.74), (0.61, 0.76)], teal, ol, ow)
    for x in (0.42, 0.5, 0.58):
        pen.line([(x, 0.545), (x, 0.59)], teal_dark, 0.015)
    pen.line([(0.63, 0.65), (0.67, 0.64)], teal_dark, 0.015)
    # face: almond green eyes, nose, mouth
    for side in (-1, 1):
        c = (0.5 + side * 0.085, 0.41)
        if p.eyes in ("happy", "closed") or (p.eyes == "wink" and side > 0):
            _eye(pen, c, 0.04, 0.03, p.eyes, (25, 15, 5), ow, right=side > 0)
        else:
            k = 1.2 if p.eyes == "wide" else 1.0
            pen.rotated_ellipse(c, 0.048 * k, 0.03 * k, side * 12, (25, 15, 5))
            pen.ellipse(c, 0.022 * k, 0.022 * k, (43, 209, 126))
            pen.ellipse(c, 0.01 * k, 0.018 * k, (10, 10, 10))
            pen.ellipse((c[0] - 0.012, c[1] - 0.012), 0.008, 0.008, (255, 255, 255))
    pen.ellipse((0.5, 0.485), 0.022, 0.015, (25, 15, 5))
    _mouth(pen, (0.5, 0.525), 0.03, p.mouth, ol, ow * 0.8, (150, 40, 40))


def _draw_gearbolt(pen: _Pen, p: Pose) -> None:
    ol, ow = (20, 32, 61), 0.012
    blue, grey, dark = (60, 111, 216), (154, 165, 177), (27, 34, 51)
    red, yellow, cyan = (255, 59, 59), (255, 210, 63), (60, 242, 255)
    # antenna
    pen.line([(0.5, 0.17), (0.5, 0.09)], grey, 0.018)
    pen.ellipse((0.5, 0.075), 0.045, 0.045, red, ol, ow)
    pen.ellipse((0.488, 0.062), 0.014, 0.012, (255, 200, 200))
    # legs with treads
    for side in (-1, 1):
        x = 0.5 + side * 0.09
        pen.rect((x - 0.055, 0.76), (x + 0.055, 0.88), (70, 78, 92), ol, ow, radius=0.015)
        for y in (0.79, 0.82, 0.85):
            pen.line([(x - 0.04, y), (x + 0.04, y)], (40, 44, 52), 0.008)
    # segmented arms with yellow claw hands
    for side, ang, sh in ((-1, p.arm_left, (0.33, 0.52)), (1, p.arm_right, (0.67, 0.52))):
        end = _limb(pen, sh, ang, side, 0.18, 0.05, grey, ol, ow)
        mid = ((sh[0] + end[0]) / 2, (sh[1] + end[1]) / 2)
        pen.ellipse(mid, 0.03, 0.03, dark)
        dx, dy = _arm_dir(ang, side)
        for spread in (-0.5, 0.5):
            a = math.atan2(dy, dx) + spread
            tip = (end[0] + 0.05 * math.cos(a), end[1] + 0.05 * math.sin(a))
            pen.line([end, tip], yellow, 0.022)
        pen.ellipse(end, 0.026, 0.026, yellow, ol, ow * 0.6)
    # body with checker chest panel
    pen.rect((0.32, 0.45), (0.68, 0.78), blue, ol, ow, radius=0.05)
    pen.rect((0.39, 0.51), (0.61, 0.7), (230, 236, 245), ol, ow * 0.6, radius=0.01)
    cols = (red, yellow, blue)
    for i in range(3):
        for j in range(3):
            x0, y0 = 0.405 + i * 0.065, 0.525 + j * 0.055
            pen.rect((x0, y0), (x0 + 0.055, y0 + 0.045), cols[(i + j) % 3])
    # neck and head
    pen.rect((0.45, 0.41), (0.55, 0.46), grey, ol, ow * 0.6)
    for side in (-1, 1):
        c = (0.5 + side * 0.205, 0.29)
        pen.ellipse(c, 0.035, 0.035, yellow, ol, ow)
        pen.line([(c[0] - 0.018, c[1]), (c[0] + 0.018, c[1])], ol, 0.008)
        pen.line([(c[0], c[1] - 0.018), (c[0], c[1] + 0.018)], ol, 0.008)
    pen.rect((0.3, 0.16), (0.7, 0.42), blue, ol, ow, radius=0.06)
    pen.rect((0.35, 0.21), (0.65, 0.37), dark, ol, ow * 0.5, radius=0.03)
    # LED eyes
    for side in (-1, 1):
        cx, cy = 0.5 + side * 0.075, 0.275
        kind = p.eyes
        if kind == "wink":
            kind = "happy" if side > 0 else "open"
        if kind == "happy":
            pen.line(
                [(cx - 0.035, cy + 0.015), (cx, cy - 0.02), (cx + 0.035, cy + 0.015)], cyan, 0.016
            )
        elif kind == "closed":
            pen.line([(cx - 0.035, cy + 0.005), (cx + 0.035, cy + 0.005)], cyan, 0.016)
        else:
            k = 1.3 if kind == "wide" else 1.0
            pen.rect((cx - 0.03 * k, cy - 0.035 * k), (cx + 0.03 * k, cy + 0.035 * k), cyan)
            pen.rect((cx - 0.018 * k, cy - 0.025 * k), (cx - 0.004, cy - 0.01), (210, 255, 255))
    # mouth as a cyan light strip
    mc = (0.5, 0.34)
    if p.mouth == "open":
        pen.rect((mc[0] - 0.04, mc[1] - 0.012), (mc[0] + 0.04, mc[1] + 0.018), cyan, radius=0.01)
    elif p.mouth == "o":
        pen.ellipse(mc, 0.018, 0.018, cyan)
    elif p.mouth == "flat":
        pen.line([(mc[0] - 0.035, mc[1]), (mc[0] + 0.035, mc[1])], cyan, 0.01)
    else:
        pen.arc((mc[0], mc[1] - 0.02), 0.04, 0.025, 20, 160, cyan, 0.012)


def _draw_mossling(pen: _Pen, p: Pose) -> None:
    ol, ow = (30, 60, 30), 0.012
    mint, moss, bark, leaf = (123, 211, 137), (76, 160, 96), (139, 90, 43), (46, 139, 87)
    # twig arms and root feet
    for side, ang in ((-1, p.arm_left), (1, p.arm_right)):
        sh = (0.5 + side * 0.2, 0.62)
        dx, dy = _arm_dir(ang, side)
        end = (sh[0] + dx * 0.16, sh[1] + dy * 0.16)
        pen.line([sh, end], bark, 0.018)
        pen.line([end, (end[0] + dx * 0.03 + side * 0.02, end[1] + dy * 0.03 - 0.02)], bark, 0.012)
    for dx in (-0.12, -0.04, 0.04, 0.12):
        pen.line([(0.5 + dx, 0.8), (0.5 + dx * 1.4, 0.88)], bark, 0.016)
    # onion/teardrop body
    pts = _ellipse_points((0.5, 0.6), 0.24, 0.22, 0)
    top = [(0.5, 0.27)]
    body = (
        [q for q in pts if q[1] > 0.52]
        + [(0.3, 0.48), (0.4, 0.36)]
        + top
        + [(0.6, 0.36), (0.7, 0.48)]
    )
    body.sort(key=lambda q: math.atan2(q[1] - 0.58, q[0] - 0.5))
    pen.poly(body, mint, ol, ow)
    for c, r in (
        ((0.36, 0.66), 0.03),
        ((0.63, 0.7), 0.035),
        ((0.55, 0.45), 0.02),
        ((0.42, 0.76), 0.02),
    ):
        pen.ellipse(c, r, r * 0.8, moss)
    # sprout
    pen.line([(0.5, 0.28), (0.5, 0.16)], bark, 0.016)
    pen.rotated_ellipse((0.43, 0.15), 0.07, 0.03, 25, leaf, ol, ow * 0.7)
    pen.rotated_ellipse((0.58, 0.13), 0.08, 0.033, -30, leaf, ol, ow * 0.7)
    # tiny flower on the side
    for i in range(5):
        a = 2 * math.pi * i / 5
        pen.ellipse(
            (0.69 + 0.018 * math.cos(a), 0.5 + 0.018 * math.sin(a)), 0.014, 0.014, (255, 255, 255)
        )
    pen.ellipse((0.69, 0.5), 0.01, 0.01, (255, 200, 0))
    # face: small dot eyes far apart, little mouth
    for side in (-1, 1):
        c = (0.5 + side * 0.11, 0.58)
        if p.eyes in ("happy", "closed") or (p.eyes == "wink" and side > 0):
            _eye(pen, c, 0.025, 0.02, p.eyes, (20, 40, 20), ow * 0.8, right=side > 0)
        else:
            r = 0.024 if p.eyes == "wide" else 0.018
            pen.ellipse(c, r, r, (20, 40, 20))
            pen.ellipse((c[0] - 0.006, c[1] - 0.006), 0.006, 0.006, (255, 255, 255))
    _mouth(pen, (0.5, 0.64), 0.022, p.mouth, (20, 40, 20), ow * 0.8, (90, 40, 40))


def _draw_jellybloom(pen: _Pen, p: Pose) -> None:
    ol, ow = (70, 40, 120), 0.012
    purple, lav, light = (155, 107, 255, 235), (199, 166, 255, 230), (225, 210, 255)
    # wavy tentacles; the outer two follow the arm angles
    phase = p.rotation / 10.0 + p.arm_left / 90.0
    for i, x0 in enumerate((0.34, 0.42, 0.5, 0.58, 0.66)):
        pts = []
        for k in range(9):
            t = k / 8
            x = x0 + 0.025 * math.sin(phase + i + t * 6)
            pts.append((x, 0.58 + t * 0.3))
        if i == 0:
            dx, dy = _arm_dir(p.arm_left, -1)
            pts = [(0.3 + dx * 0.2 * t, 0.56 + dy * 0.2 * t) for t in (0, 0.33, 0.66, 1.0)]
        if i == 4:
            dx, dy = _arm_dir(p.arm_right, 1)
            pts = [(0.7 + dx * 0.2 * t, 0.56 + dy * 0.2 * t) for t in (0, 0.33, 0.66, 1.0)]
        pen.line(pts, ol, 0.04)
        pen.line(pts, lav, 0.025)
    # dome with scalloped rim
    x, y = pen.pt((0.5, 0.52))
    rx, ry = pen.px(0.29), pen.px(0.3)
    pen.d.pieslice(
        (x - rx, y - ry, x + rx, y + ry), 180, 360, fill=purple, outline=ol, width=pen.lw(ow)
    )
    for i in range(7):
        pen.ellipse((0.25 + i * (0.5 / 6), 0.53), 0.045, 0.035, purple, ol, ow * 0.7)
    pen.rect((0.24, 0.49), (0.76, 0.54), purple)
    for c, r in (
        ((0.38, 0.33), 0.035),
        ((0.62, 0.3), 0.025),
        ((0.55, 0.4), 0.018),
        ((0.3, 0.45), 0.02),
    ):
        pen.ellipse(c, r, r, light)
    # crown of three small flowers
    for cx in (0.42, 0.5, 0.58):
        cy = 0.215 if cx == 0.5 else 0.235
        for i in range(6):
            a = 2 * math.pi * i / 6
            pen.ellipse(
                (cx + 0.02 * math.cos(a), cy + 0.02 * math.sin(a)), 0.014, 0.014, (255, 150, 200)
            )
        pen.ellipse((cx, cy), 0.012, 0.012, (255, 235, 120))
    # face: white eyes with purple pupils
    for side in (-1, 1):
        c = (0.5 + side * 0.1, 0.42)
        if p.eyes in ("happy", "closed") or (p.eyes == "wink" and side > 0):
            _eye(pen, c, 0.04, 0.03, p.eyes, (40, 20, 70), ow, right=side > 0)
        else:
            k = 1.2 if p.eyes == "wide" else 1.0
            pen.ellipse(c, 0.045 * k, 0.045 * k, (255, 255, 255), ol, ow * 0.6)
            pen.ellipse((c[0], c[1] + 0.008), 0.022 * k, 0.025 * k, (90, 30, 150))
            pen.ellipse((c[0] - 0.008, c[1] - 0.004), 0.007, 0.007, (255, 255, 255))
    _mouth(pen, (0.5, 0.47), 0.025, p.mouth, (40, 20, 70), ow * 0.8, (120, 40, 90))


def _draw_inkpaw(pen: _Pen, p: Pose) -> None:
    ol, ow = (20, 20, 24), 0.012
    white, grey, black, gold = (252, 252, 252), (225, 226, 232), (28, 28, 32), (242, 183, 5)
    # feet, arms
    for side in (-1, 1):
        pen.ellipse((0.5 + side * 0.1, 0.84), 0.075, 0.045, black, ol, ow)
    _limb(pen, (0.34, 0.66), p.arm_left, -1, 0.15, 0.07, black, ol, ow)
    _limb(pen, (0.66, 0.66), p.arm_right, 1, 0.15, 0.07, black, ol, ow)
    # body with striped tummy
    pen.ellipse((0.5, 0.7), 0.19, 0.16, grey, ol, ow)
    for y in (0.66, 0.72, 0.78):
        pen.arc((0.5, y), 0.09, 0.03, 20, 160, (170, 172, 182), 0.01)
    # collar with a bell
    pen.rect((0.35, 0.55), (0.65, 0.6), gold, ol, ow, radius=0.02)
    pen.ellipse((0.5, 0.62), 0.035, 0.035, gold, ol, ow)
    pen.line([(0.5, 0.625), (0.5, 0.65)], ol, 0.008)
    # ears and head
    for side in (-1, 1):
        pen.ellipse((0.5 + side * 0.17, 0.22), 0.07, 0.07, black, ol, ow)
    pen.ellipse((0.5, 0.38), 0.23, 0.19, white, ol, ow)
    # eye patches with eyes inside
    for side in (-1, 1):
        c = (0.5 + side * 0.095, 0.38)
        pen.rotated_ellipse(c, 0.055, 0.075, side * -25, black)
        if p.eyes in ("happy", "closed") or (p.eyes == "wink" and side > 0):
            _eye(pen, c, 0.03, 0.025, p.eyes, (255, 255, 255), ow, right=side > 0)
        else:
            k = 1.2 if p.eyes == "wide" else 1.0
            pen.ellipse(c, 0.025 * k, 0.028 * k, (255, 255, 255))
            pen.ellipse((c[0], c[1] + 0.005), 0.012 * k, 0.015 * k, black)
    pen.ellipse((0.5, 0.45), 0.02, 0.014, black)
    _mouth(pen, (0.5, 0.48), 0.028, p.mouth, black, ow * 0.8, (200, 60, 80))
    for side in (-1, 1):
        for dy in (-0.012, 0.012):
            pen.line(
                [(0.5 + side * 0.14, 0.46 + dy), (0.5 + side * 0.24, 0.45 + dy * 2)], ol, 0.006
            )


_DRAWERS: dict[str, Callable[[_Pen, Pose], None]] = {
    "pompom": _draw_pompom,
    "kitsumaru": _draw_kitsumaru,
    "gearbolt": _draw_gearbolt,
    "mossling": _draw_mossling,
    "jellybloom": _draw_jellybloom,
    "inkpaw": _draw_inkpaw,
}


def _premul_transform(img: Image.Image, fn: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Resize/rotate in premultiplied alpha so edges don't pick up dark fringes."""
    return fn(img.convert("RGBa")).convert("RGBA")


def _composite_at(dst: Image.Image, src: Image.Image, x: int, y: int) -> None:
    """Alpha-composite ``src`` onto ``dst`` at (x, y); parts outside ``dst`` are dropped."""
    left, top = max(0, -x), max(0, -y)
    right = min(src.width, dst.width - x)
    bottom = min(src.height, dst.height - y)
    if right <= left or bottom <= top:
        return
    part = (
        src.crop((left, top, right, bottom))
        if (left, top, right, bottom) != (0, 0, *src.size)
        else src
    )
    dst.alpha_composite(part, (x + left, y + top))


def render_posed(draw: Callable[[_Pen, Pose], None], pose: int, size: int) -> Image.Image:
    """A drawing function's character in pose ``pose``: drawn supersampled, stretched or
    squashed (feet stay put), rotated, then scaled down to ``size`` (RGBA)."""
    params = pose_params(pose)
    big = size * SUPERSAMPLE
    span = round(big / PAD)
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw(_Pen(img, span), params)
    feet_y = (big - span) / 2 + 0.9 * span
    if params.stretch != 1.0:
        # stretch: narrower and a little taller; squash: wider and shorter (feet stay put)
        sy = params.stretch if params.stretch < 1 else params.stretch**0.5
        sx = 1.0 / params.stretch**0.8 if params.stretch < 1 else 1.0 / params.stretch
        w, h = max(1, round(big * sx)), max(1, round(big * sy))
        scaled = _premul_transform(img, lambda im: im.resize((w, h), Image.Resampling.BICUBIC))
        img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        _composite_at(img, scaled, (big - w) // 2, round(feet_y - feet_y * sy))
    if params.rotation:
        center = (big / 2, (big - span) / 2 + 0.6 * span)
        img = _premul_transform(
            img,
            lambda im: im.rotate(params.rotation, resample=Image.Resampling.BICUBIC, center=center),
        )
    return _premul_transform(img, lambda im: im.resize((size, size), Image.Resampling.LANCZOS))


@lru_cache(maxsize=256)
def _render_cached(key: str, pose: int, size: int) -> Image.Image:
    return render_posed(_DRAWERS[key], pose, size)


def render_character(key: str, pose: int = 0, size: int = 256) -> Image.Image:
    """Draw character ``key`` in pose ``pose`` on a transparent ``size`` x ``size`` RGBA image."""
    if key not in _DRAWERS:
        raise KeyError(f"unknown demo character {key!r} (known: {', '.join(_DRAWERS)})")
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    if pose < 0:
        raise ValueError(f"pose must be >= 0, got {pose}")
    return _render_cached(key, int(pose), int(size)).copy()


# ---------------------------------------------------------------------------------------------
# reference images

_REF_BACKGROUNDS: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((255, 255, 255), (255, 255, 255)),
    ((236, 244, 255), (206, 224, 250)),
    ((255, 248, 232), (250, 232, 200)),
    ((238, 238, 242), (238, 238, 242)),
    ((240, 255, 244), (214, 240, 224)),
    ((250, 240, 255), (232, 214, 248)),
)
_REF_POSES: tuple[int, ...] = (0, 1, 4, 3, 6, 2, 5, 7)


def _vertical_gradient(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]):
    grad = Image.linear_gradient("L").resize((size, size))
    return Image.composite(
        Image.new("RGB", (size, size), bottom), Image.new("RGB", (size, size), top), grad
    )


def reference_image(key: str, index: int, size: int = 512) -> Image.Image:
    """Reference picture ``index`` of a character: a pose on a plain or soft background (RGB)."""
    top, bottom = _REF_BACKGROUNDS[index % len(_REF_BACKGROUNDS)]
    bg = _vertical_gradient(size, top, bottom).convert("RGBA")
    pose = _REF_POSES[index % len(_REF_POSES)] + POSE_COUNT * (index // len(_REF_POSES))
    scale = (0.92, 0.84, 0.96, 0.88)[index % 4]
    char_size = round(size * scale)
    sprite = render_character(key, pose, char_size)
    off = ((size - char_size) // 2 + (index % 3 - 1) * size // 40, (size - char_size) // 2)
    bg.alpha_composite(sprite, off)
    return bg.convert("RGB")


def write_reference_images(out_dir: Path, per_character: int = 4) -> dict[str, list[Path]]:
    """Write PNG references of the registered characters; returns ``{key: [paths]}``."""
    if per_character < 1:
        raise ValueError(f"per_character must be >= 1, got {per_character}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for ch in DEMO_CHARACTERS:
        if not ch.registered:
            continue
        paths = []
        for i in range(per_character):
            path = out_dir / f"{ch.key}_{i:02d}.png"
            tmp = path.with_name(path.name + ".tmp")
            reference_image(ch.key, i).save(tmp, format="PNG")
            tmp.replace(path)
            paths.append(path)
        written[ch.key] = paths
    return written


def contact_sheet(size: int = 192, poses: Sequence[int] = tuple(range(POSE_COUNT))) -> Image.Image:
    """Every character (rows) in the given poses (columns) on a light grid, for a quick look."""
    keys = list(_DRAWERS)
    sheet = Image.new("RGBA", (size * len(poses), size * len(keys)), (245, 245, 245, 255))
    for r, key in enumerate(keys):
        for c, pose in enumerate(poses):
            tile = Image.new(
                "RGBA", (size, size), (255, 255, 255, 255) if (r + c) % 2 else (232, 236, 242, 255)
            )
            tile.alpha_composite(render_character(key, pose, size))
            sheet.paste(tile, (c * size, r * size))
    return sheet.convert("RGB")
