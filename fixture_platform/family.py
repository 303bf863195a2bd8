"""A procedural family of characters drawn in one shared house style.

Every member has the same body plan (head, round body, two arms, two feet), the same outline
colour and line weight, the same eye construction (dark oval, coloured iris, two highlights),
blush and shading; members differ in head shape, ears or horns, hair, iris colour, body and
secondary colour (all from one pastel band), body pattern, accessory and tail. A family has
registered members, unregistered members of the same style, and look-alikes that copy one
registered member's body colour and two other salient attributes but nothing else.

Video specs refer to a member by :attr:`FamilyCharacter.sprite_key` (``"fam:..."``), a string
that holds every attribute, so any process can draw it without shared state.
"""

from __future__ import annotations

import colorsys
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache

from PIL import Image

from fixture_platform.characters import (
    _REF_BACKGROUNDS,
    _REF_POSES,
    POSE_COUNT,
    Pose,
    _eye,
    _limb,
    _mouth,
    _Pen,
    _star,
    _vertical_gradient,
    render_posed,
)

RGB = tuple[int, int, int]

FAMILY_PREFIX = "fam:"
HEADS = ("round", "oval", "wide", "square")
EARS = ("cat", "round", "bunny", "antenna", "horns", "leaf", "none")
HAIRS = ("tuft", "fringe", "curl", "spikes", "none")
PATTERNS = ("none", "stripes", "dots", "star", "heart", "belly")
ACCESSORIES = ("bow", "scarf", "hat", "glasses", "flower", "none")
TAILS = ("none", "thin", "fluffy", "puff", "arrow")
HUES = 12  # body and secondary colours: this many hues of one pastel band
IRISES: tuple[RGB, ...] = (
    (40, 110, 220),
    (30, 160, 90),
    (225, 150, 20),
    (140, 60, 200),
    (210, 50, 60),
    (20, 160, 170),
    (230, 80, 160),
    (120, 75, 40),
)
ATTRIBUTES = ("head", "ears", "hair", "iris", "body", "secondary", "pattern", "accessory", "tail")
SALIENT = ("head", "ears", "hair", "pattern", "accessory", "tail", "secondary")

OUTLINE: RGB = (58, 40, 66)  # shared outline colour
LINE = 0.012  # shared line weight (unit coordinates)
EYE_DARK: RGB = (34, 24, 40)
BLUSH: RGB = (255, 150, 172)
MOUTH_INNER: RGB = (160, 50, 80)
HORN: RGB = (250, 236, 204)


def pastel(hue: int, light: float = 0.76, sat: float = 0.72) -> RGB:
    """Colour ``hue`` (0..HUES-1) of the family's pastel band."""
    r, g, b = colorsys.hls_to_rgb((hue % HUES) / HUES, light, sat)
    return (round(r * 255), round(g * 255), round(b * 255))


@dataclass(frozen=True)
class FamilyCharacter:
    """One family member. ``body``/``secondary`` are pastel hue indexes, ``iris`` an index
    into :data:`IRISES`; ``role`` is registered | unregistered | lookalike and
    ``lookalike_of`` the key of the registered member a look-alike copies."""

    key: str
    name: str
    head: str
    ears: str
    hair: str
    iris: int
    body: int
    secondary: int
    pattern: str
    accessory: str
    tail: str
    role: str = "registered"
    lookalike_of: str | None = None

    @property
    def body_rgb(self) -> RGB:
        return pastel(self.body)

    @property
    def secondary_rgb(self) -> RGB:
        return pastel(self.secondary, light=0.86, sat=0.8)

    @property
    def shade_rgb(self) -> RGB:
        return pastel(self.body, light=0.64, sat=0.5)

    @property
    def iris_rgb(self) -> RGB:
        return IRISES[self.iris % len(IRISES)]

    @property
    def sprite_key(self) -> str:
        """A self-contained ``fam:`` key that :func:`from_sprite_key` turns back into this."""
        return FAMILY_PREFIX + ";".join("" if v is None else str(v) for v in self._values())

    def _values(self) -> list[object]:
        return [getattr(self, f.name) for f in fields(self)]

    def attributes(self) -> dict[str, object]:
        """The drawn attributes (what makes two members alike or not)."""
        return {a: getattr(self, a) for a in ATTRIBUTES}

    def shared_with(self, other: FamilyCharacter) -> int:
        """How many drawn attributes this member shares with ``other``."""
        a, b = self.attributes(), other.attributes()
        return sum(a[k] == b[k] for k in ATTRIBUTES)


def from_sprite_key(key: str) -> FamilyCharacter:
    """The member a :attr:`FamilyCharacter.sprite_key` describes (``ValueError`` if malformed)."""
    if not key.startswith(FAMILY_PREFIX):
        raise ValueError(f"not a family sprite key: {key!r}")
    parts = key[len(FAMILY_PREFIX) :].split(";")
    names = [f.name for f in fields(FamilyCharacter)]
    if len(parts) != len(names):
        raise ValueError(f"family sprite key has {len(parts)} fields, expected {len(names)}")
    vals: dict[str, object] = dict(zip(names, parts, strict=True))
    for k in ("iris", "body", "secondary"):
        vals[k] = int(str(vals[k]))
    vals["lookalike_of"] = vals["lookalike_of"] or None
    return FamilyCharacter(**vals)  # type: ignore[arg-type]


@dataclass
class Family:
    """A generated family: registered members, same-style strangers and look-alikes."""

    seed: int
    registered: list[FamilyCharacter] = field(default_factory=list)
    unregistered: list[FamilyCharacter] = field(default_factory=list)
    lookalikes: list[FamilyCharacter] = field(default_factory=list)

    @property
    def members(self) -> list[FamilyCharacter]:
        return [*self.registered, *self.unregistered, *self.lookalikes]

    def by_key(self, key: str) -> FamilyCharacter:
        """The member with this key (``KeyError`` otherwise)."""
        for c in self.members:
            if c.key == key:
                return c
        raise KeyError(f"no family member {key!r}")


# ---------------------------------------------------------------------------------------------
# generation

_ONSETS = ("m", "p", "t", "k", "n", "l", "r", "s", "b", "d", "ch", "h", "y", "z", "f", "w")
_VOWELS = ("a", "i", "u", "e", "o")
_CODAS = ("", "", "", "n", "m")


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        syl = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.choice((2, 2, 3)))]
        name = ("".join(syl) + rng.choice(_CODAS)).capitalize()
        if name not in taken and len(name) <= 8:
            taken.add(name)
            return name


def _random_member(rng: random.Random) -> dict[str, object]:
    body = rng.randrange(HUES)
    return {
        "head": rng.choice(HEADS),
        "ears": rng.choice(EARS),
        "hair": rng.choice(HAIRS),
        "iris": rng.randrange(len(IRISES)),
        "body": body,
        "secondary": (body + rng.randrange(3, HUES - 2)) % HUES,
        "pattern": rng.choice(PATTERNS),
        "accessory": rng.choice(ACCESSORIES),
        "tail": rng.choice(TAILS),
    }


def _fits(c: FamilyCharacter, others: Sequence[FamilyCharacter], limit: int) -> bool:
    return all(c.shared_with(o) <= limit for o in others)


def family(
    seed: int, n_registered: int = 8, n_unregistered: int = 8, n_lookalikes: int = 4
) -> Family:
    """A deterministic family for ``seed``. Registered members have distinct body hues; no two
    members share more than 4 of the 9 drawn attributes, except a look-alike with its model
    (exactly body colour plus two salient attributes)."""
    if min(n_registered, n_unregistered, n_lookalikes) < 0 or n_registered > HUES:
        raise ValueError(f"need 0 <= n_registered <= {HUES} and non-negative counts")
    if n_lookalikes and not n_registered:
        raise ValueError("look-alikes need registered members")
    rng = random.Random(f"family:{seed}")
    fam = Family(seed)
    names: set[str] = set()
    limit = 4
    count = 0

    def make(role: str, attrs: dict[str, object], of: str | None = None) -> FamilyCharacter:
        return FamilyCharacter(
            key=f"fam-s{seed}-{count:02d}",
            name="",
            role=role,
            lookalike_of=of,
            **attrs,  # type: ignore[arg-type]
        )

    def named(c: FamilyCharacter) -> FamilyCharacter:
        return replace(c, name=_name(random.Random(f"name:{seed}:{count}"), names))

    for role, n, out in (
        ("registered", n_registered, fam.registered),
        ("unregistered", n_unregistered, fam.unregistered),
    ):
        for _ in range(n):
            for _attempt in range(5000):
                attrs = _random_member(rng)
                if role == "registered" and any(attrs["body"] == c.body for c in out):
                    continue
                cand = make(role, attrs)
                if _fits(cand, fam.members, limit):
                    break
            else:
                raise RuntimeError(f"could not draw {n} distinct {role} members")
            out.append(named(cand))
            count += 1
    for i in range(n_lookalikes):
        model = fam.registered[i % len(fam.registered)]
        for _attempt in range(5000):
            copied = rng.sample(SALIENT, 2)
            attrs = _random_member(rng)
            attrs["body"] = model.body
            for a in copied:
                attrs[a] = getattr(model, a)
            for a in ATTRIBUTES:
                if a not in copied and a != "body" and attrs[a] == getattr(model, a):
                    break
            else:
                cand = make("lookalike", attrs, model.key)
                others = [m for m in fam.members if m.key != model.key]
                if cand.shared_with(model) == 3 and _fits(cand, others, limit):
                    break
        else:
            raise RuntimeError("could not draw a look-alike")
        fam.lookalikes.append(named(cand))
        count += 1
    return fam


# ---------------------------------------------------------------------------------------------
# drawing

HEAD_C = (0.5, 0.37)


def _head_size(head: str) -> tuple[float, float]:
    return {"round": (0.22, 0.2), "oval": (0.18, 0.22), "wide": (0.27, 0.17)}.get(
        head, (0.21, 0.18)
    )


def _shaded(pen: _Pen, c: tuple[float, float], rx: float, ry: float, ch: FamilyCharacter) -> None:
    """The family's shading: outlined shadow shape, lit shape shifted up-left over it."""
    lit = (c[0] - rx * 0.07, c[1] - ry * 0.09)
    if ch.head == "square" and c == HEAD_C:
        pen.rect((c[0] - rx, c[1] - ry), (c[0] + rx, c[1] + ry), ch.shade_rgb, OUTLINE, LINE, 0.08)
        pen.rect(
            (lit[0] - rx * 0.9, lit[1] - ry * 0.88),
            (lit[0] + rx * 0.9, lit[1] + ry * 0.88),
            ch.body_rgb,
            radius=0.07,
        )
        return
    pen.ellipse(c, rx, ry, ch.shade_rgb, OUTLINE, LINE)
    pen.ellipse(lit, rx * 0.9, ry * 0.88, ch.body_rgb)


def _tail(pen: _Pen, ch: FamilyCharacter) -> None:
    body, sec = ch.body_rgb, ch.secondary_rgb
    if ch.tail == "thin":
        pts = [(0.6, 0.74), (0.74, 0.72), (0.8, 0.62), (0.77, 0.53)]
        pen.line(pts, OUTLINE, 0.05)
        pen.line(pts, body, 0.05 - 2 * LINE)
    elif ch.tail == "fluffy":
        pen.rotated_ellipse((0.7, 0.64), 0.07, 0.13, 30, body, OUTLINE, LINE)
        pen.rotated_ellipse((0.76, 0.54), 0.045, 0.055, 30, sec, OUTLINE, LINE * 0.7)
    elif ch.tail == "puff":
        pen.ellipse((0.68, 0.75), 0.055, 0.055, sec, OUTLINE, LINE)
    elif ch.tail == "arrow":
        pts = [(0.62, 0.76), (0.74, 0.78), (0.8, 0.68)]
        pen.line(pts, OUTLINE, 0.022)
        pen.poly([(0.8, 0.6), (0.85, 0.7), (0.75, 0.69)], sec, OUTLINE, LINE)


def _ears(pen: _Pen, ch: FamilyCharacter, top: float) -> None:
    body, sec = ch.body_rgb, ch.secondary_rgb
    for side in (-1, 1):
        x = 0.5 + side * 0.15
        if ch.ears == "cat":
            pen.poly([(x - 0.07, top + 0.07), (x + side * 0.04, top - 0.1), (x + 0.07, top + 0.05)],
                     body, OUTLINE, LINE)  # fmt: skip
            inner = [
                (x - 0.035, top + 0.05),
                (x + side * 0.035, top - 0.05),
                (x + 0.035, top + 0.04),
            ]
            pen.poly(inner, sec)
        elif ch.ears == "round":
            pen.ellipse((x + side * 0.02, top + 0.01), 0.065, 0.065, body, OUTLINE, LINE)
            pen.ellipse((x + side * 0.02, top + 0.01), 0.035, 0.035, sec)
        elif ch.ears == "bunny":
            c = (0.5 + side * 0.09, top - 0.08)
            pen.rotated_ellipse(c, 0.04, 0.12, side * 12, body, OUTLINE, LINE)
            pen.rotated_ellipse(c, 0.018, 0.08, side * 12, sec)
        elif ch.ears == "antenna":
            base, tip = (0.5 + side * 0.06, top + 0.02), (0.5 + side * 0.11, top - 0.11)
            pen.line(
                [base, ((base[0] + tip[0]) / 2 - side * 0.02, top - 0.05), tip], OUTLINE, 0.014
            )
            pen.ellipse(tip, 0.032, 0.032, sec, OUTLINE, LINE)
        elif ch.ears == "horns":
            hx = _head_size(ch.head)[0]
            horn = [
                (0.5 + side * hx * 0.35, top + 0.05),
                (0.5 + side * (hx * 0.7 + 0.02), top - 0.09),
                (0.5 + side * hx * 0.75, top + 0.07),
            ]
            pen.poly(horn, HORN, OUTLINE, LINE)
    if ch.ears == "leaf":
        pen.line([(0.5, top + 0.02), (0.51, top - 0.05)], OUTLINE, 0.014)
        pen.rotated_ellipse((0.56, top - 0.07), 0.065, 0.028, -30, sec, OUTLINE, LINE)
        pen.rotated_ellipse((0.45, top - 0.06), 0.045, 0.022, 25, sec, OUTLINE, LINE)


def _hair(pen: _Pen, ch: FamilyCharacter, top: float, rx: float) -> None:
    shade, sec = ch.shade_rgb, ch.secondary_rgb
    if ch.hair == "tuft":
        pen.poly([(0.45, top + 0.03), (0.47, top - 0.06), (0.5, top + 0.0), (0.53, top - 0.07),
                  (0.55, top + 0.03)], ch.body_rgb, OUTLINE, LINE)  # fmt: skip
    elif ch.hair == "fringe":
        for i in range(5):
            x = 0.5 + (i - 2) * rx * 0.32
            pen.ellipse((x, top + 0.045), rx * 0.2, 0.04, sec, OUTLINE, LINE * 0.7)
    elif ch.hair == "curl":
        pen.arc((0.5, top - 0.02), 0.035, 0.035, 90, 420, OUTLINE, 0.016)
    elif ch.hair == "spikes":
        pts = []
        for i in range(6):
            x = 0.5 + (i - 2.5) * rx * 0.3
            pts += [(x - rx * 0.15, top + 0.05), (x, top - 0.03)]
        pts.append((0.5 + 2.5 * rx * 0.3 + rx * 0.15, top + 0.05))
        pen.poly(pts, shade, OUTLINE, LINE)


def _pattern(pen: _Pen, ch: FamilyCharacter) -> None:
    sec = ch.secondary_rgb
    if ch.pattern == "stripes":
        for y in (0.61, 0.67, 0.73):
            half = 0.14 * math.sqrt(max(0.0, 1 - ((y - 0.66) / 0.14) ** 2))
            pen.line([(0.5 - half, y), (0.5 + half, y)], sec, 0.022)
    elif ch.pattern == "dots":
        for c in ((0.42, 0.6), (0.58, 0.6), (0.5, 0.67), (0.41, 0.73), (0.59, 0.73)):
            pen.ellipse(c, 0.022, 0.022, sec)
    elif ch.pattern == "star":
        pen.poly(_star((0.5, 0.665), 0.07, 0.03), sec, OUTLINE, LINE * 0.6)
    elif ch.pattern == "heart":
        pen.ellipse((0.47, 0.645), 0.035, 0.035, sec)
        pen.ellipse((0.53, 0.645), 0.035, 0.035, sec)
        pen.poly([(0.438, 0.655), (0.562, 0.655), (0.5, 0.725)], sec)
    elif ch.pattern == "belly":
        pen.ellipse((0.5, 0.69), 0.1, 0.085, sec, OUTLINE, LINE * 0.6)


def _accessory(pen: _Pen, ch: FamilyCharacter, top: float, rx: float) -> None:
    sec = ch.secondary_rgb
    if ch.accessory == "bow":
        c = (0.5 + rx * 0.6, top + 0.04)
        pen.poly([c, (c[0] - 0.07, c[1] - 0.045), (c[0] - 0.07, c[1] + 0.045)], sec, OUTLINE, LINE)
        pen.poly([c, (c[0] + 0.07, c[1] - 0.045), (c[0] + 0.07, c[1] + 0.045)], sec, OUTLINE, LINE)
        pen.ellipse(c, 0.022, 0.022, sec, OUTLINE, LINE)
    elif ch.accessory == "scarf":
        pen.rect((0.35, 0.53), (0.65, 0.58), sec, OUTLINE, LINE, radius=0.025)
        pen.poly([(0.38, 0.56), (0.45, 0.56), (0.43, 0.68), (0.36, 0.67)], sec, OUTLINE, LINE)
    elif ch.accessory == "hat":
        pen.ellipse((0.5, top + 0.015), 0.15, 0.03, sec, OUTLINE, LINE)
        pen.rect((0.41, top - 0.11), (0.59, top + 0.01), sec, OUTLINE, LINE, radius=0.03)
        pen.rect((0.41, top - 0.035), (0.59, top - 0.005), OUTLINE)
    elif ch.accessory == "glasses":
        for side in (-1, 1):
            pen.ellipse((0.5 + side * 0.085, 0.39), 0.065, 0.065, None, OUTLINE, LINE * 1.1)
        pen.line([(0.47, 0.38), (0.53, 0.38)], OUTLINE, LINE * 1.1)
    elif ch.accessory == "flower":
        c = (0.5 - rx * 0.65, top + 0.05)
        for i in range(5):
            a = 2 * math.pi * i / 5
            pen.ellipse((c[0] + 0.028 * math.cos(a), c[1] + 0.028 * math.sin(a)), 0.022, 0.022,
                        sec, OUTLINE, LINE * 0.6)  # fmt: skip
        pen.ellipse(c, 0.018, 0.018, (255, 220, 90), OUTLINE, LINE * 0.6)


def _draw_member(pen: _Pen, p: Pose, ch: FamilyCharacter) -> None:
    """One member in pose ``p``: back to front, in the family's shared construction."""
    body, sec = ch.body_rgb, ch.secondary_rgb
    rx, ry = _head_size(ch.head)
    top = HEAD_C[1] - ry
    _tail(pen, ch)
    for side in (-1, 1):
        pen.ellipse((0.5 + side * 0.085, 0.82), 0.07, 0.042, sec, OUTLINE, LINE)
    _limb(pen, (0.37, 0.6), p.arm_left, -1, 0.15, 0.06, body, OUTLINE, LINE, body, 0.035)
    _limb(pen, (0.63, 0.6), p.arm_right, 1, 0.15, 0.06, body, OUTLINE, LINE, body, 0.035)
    _shaded(pen, (0.5, 0.665), 0.16, 0.15, ch)
    _pattern(pen, ch)
    if ch.accessory == "scarf":
        _accessory(pen, ch, top, rx)
    _ears(pen, ch, top)
    _shaded(pen, HEAD_C, rx, ry, ch)
    _hair(pen, ch, top, rx)
    for side in (-1, 1):
        c = (0.5 + side * 0.085, 0.39)
        _eye(pen, c, 0.042, 0.054, p.eyes, EYE_DARK, LINE, iris=ch.iris_rgb, right=side > 0)
        pen.ellipse((0.5 + side * 0.16, 0.45), 0.03, 0.017, BLUSH)
    _mouth(pen, (0.5, 0.46), 0.026, p.mouth, OUTLINE, LINE, MOUTH_INNER)
    if ch.accessory != "scarf":
        _accessory(pen, ch, top, rx)


@lru_cache(maxsize=256)
def _render_cached(ch: FamilyCharacter, pose: int, size: int) -> Image.Image:
    return render_posed(lambda pen, p: _draw_member(pen, p, ch), pose, size)


def render_family(char: FamilyCharacter, pose: int, size: int = 256) -> Image.Image:
    """Draw ``char`` in pose ``pose`` (see ``characters.pose_params``) on a transparent RGBA
    ``size`` x ``size`` image."""
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    if pose < 0:
        raise ValueError(f"pose must be >= 0, got {pose}")
    return _render_cached(char, int(pose), int(size)).copy()


def render_sprite_key(key: str, pose: int, size: int) -> Image.Image:
    """:func:`render_family` for a ``fam:`` sprite key (what video specs carry)."""
    return render_family(from_sprite_key(key), pose, size)


def reference_pose(index: int) -> int:
    """The pose of reference picture ``index`` (as ``characters.reference_image``)."""
    return _REF_POSES[index % len(_REF_POSES)] + POSE_COUNT * (index // len(_REF_POSES))


def family_reference(char: FamilyCharacter, index: int, size: int = 512) -> Image.Image:
    """Reference picture ``index`` of a member: a pose on a plain or soft background (RGB)."""
    top, bottom = _REF_BACKGROUNDS[index % len(_REF_BACKGROUNDS)]
    bg = _vertical_gradient(size, top, bottom).convert("RGBA")
    char_size = round(size * (0.92, 0.84, 0.96, 0.88)[index % 4])
    sprite = render_family(char, reference_pose(index), char_size)
    off = ((size - char_size) // 2 + (index % 3 - 1) * size // 40, (size - char_size) // 2)
    bg.alpha_composite(sprite, off)
    return bg.convert("RGB")


def family_sheet(fam: Family, size: int = 160, poses: Sequence[int] = (0, 2, 5)) -> Image.Image:
    """A contact sheet: each registered member with its look-alikes beside it, then the
    unregistered members, each in ``poses``."""
    from PIL import ImageDraw

    rows: list[list[FamilyCharacter]] = []
    for r in fam.registered:
        rows.append([r, *[la for la in fam.lookalikes if la.lookalike_of == r.key]])
    half = (len(fam.unregistered) + 1) // 2
    rows.append(fam.unregistered[:half])
    rows.append(fam.unregistered[half:])
    cols = max(len(r) for r in rows) * len(poses)
    sheet = Image.new("RGB", (size * cols, (size + 16) * len(rows)), (245, 245, 245))
    d = ImageDraw.Draw(sheet)
    for y, row in enumerate(rows):
        for m, ch in enumerate(row):
            for k, pose in enumerate(poses):
                x = (m * len(poses) + k) * size
                shade = (255, 255, 255) if m % 2 == 0 else (226, 232, 240)
                tile = Image.new("RGBA", (size, size), (*shade, 255))
                tile.alpha_composite(render_family(ch, pose, size))
                sheet.paste(tile.convert("RGB"), (x, y * (size + 16) + 16))
            label = f"{ch.name} [{ch.role[0]}]" + (
                f" ~{ch.lookalike_of}" if ch.lookalike_of else ""
            )
            d.text((m * len(poses) * size + 4, y * (size + 16) + 2), label, fill=(0, 0, 0))
    return sheet
