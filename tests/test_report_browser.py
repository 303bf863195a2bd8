"""The HTML report in headless Chromium: cards, counts, sorting, filters, no injected script."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from reports import write_report
from tests.conftest import CHROMIUM, needs_chromium
from tests.test_reports import (
    DOM_IMG_PAYLOAD,
    DOM_SCRIPT_PAYLOAD,
    IMG_PAYLOAD,
    JP_CAPTION,
    SCRIPT_PAYLOAD,
    SINCE,
    UNTIL,
    Fixture,
    Tags,
    populate,
)

pytestmark = needs_chromium


def chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on ``url``, offline, with a throw-away profile."""
    profile = tmp / "profile"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
        *extra,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


class Dom(Tags):
    """The DOM after the page's script ran, parsed, with its serialized text in ``raw``."""

    raw = ""


def dump_dom(html: Path, tmp: Path, fragment: str = "") -> Dom:
    proc = chromium(html.as_uri() + fragment, tmp, "--dump-dom")
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    page = Dom()
    page.feed(proc.stdout)
    page.raw = proc.stdout
    return page


def attrs_of(page: Tags, tag: str, **match: str) -> list[dict[str, str | None]]:
    return [a for t, a in page.tags if t == tag and all(a.get(k) == v for k, v in match.items())]


def flag_rows(page: Tags) -> list[dict[str, str | None]]:
    return [a for t, a in page.tags if t == "tr" and "data-detection-id" in a]


@pytest.fixture
def report(tmp_path: Path) -> tuple[Fixture, Path]:
    fx = populate(tmp_path)
    res = write_report(fx.cfg, fx.store, since=SINCE, until=UNTIL, out_dir=tmp_path / "out")
    yield fx, res.html_path
    fx.store.dispose()


def html_root(page: Tags) -> dict[str, str | None]:
    return next(a for t, a in page.tags if t == "html")


def test_dom_cards_counts_and_no_injected_script(
    report: tuple[Fixture, Path], tmp_path: Path
) -> None:
    _, html = report
    page = dump_dom(html, tmp_path)
    assert html_root(page).get("data-ready") == "1", "the page's own script ran under its CSP"
    body = next(a for t, a in page.tags if t == "body")
    assert "data-pwned" not in body
    assert body["data-flags"] == "6" and body["data-videos"] == "5"
    cards = [a for t, a in page.tags if t == "article" and "card" in (a.get("class") or "")]
    assert len(cards) == 5
    assert sum(int(a["data-detections"] or 0) for a in cards) == 6
    assert len(flag_rows(page)) == 6
    assert re.search(r'id="flt-count">6 of 6<', page.raw)
    assert re.search(r'id="kpi-flags"><div class="n">6<', page.raw)
    # every payload is shown as text, nothing it would create exists
    text = "".join(page.text)
    for payload in (SCRIPT_PAYLOAD, IMG_PAYLOAD, DOM_SCRIPT_PAYLOAD, DOM_IMG_PAYLOAD, JP_CAPTION):
        assert payload in text
    assert not attrs_of(page, "img", src="x")
    assert all((a.get("src") or "").startswith("data:image/") for a in attrs_of(page, "img"))
    assert len(page.scripts) == 1 and "pwned" not in page.scripts[0]
    assert "<title>" in page.raw and "pwned" not in page.raw.split("</title>")[0]


def test_no_payload_runs_even_without_the_csp(report: tuple[Fixture, Path], tmp_path: Path) -> None:
    """Escaping alone keeps the payloads inert (the CSP is a second line of defence)."""
    _, html = report
    bare = tmp_path / "no-csp.html"
    text = html.read_text(encoding="utf-8")
    stripped = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    assert stripped != text
    bare.write_text(stripped, encoding="utf-8")
    page = dump_dom(bare, tmp_path)
    assert html_root(page).get("data-ready") == "1"
    body = next(a for t, a in page.tags if t == "body")
    assert "data-pwned" not in body
    assert not attrs_of(page, "img", src="x")


def test_table_sorts_and_filters(report: tuple[Fixture, Path], tmp_path: Path) -> None:
    _, html = report
    # one click on "Score" sorts high to low, a second click low to high
    page = dump_dom(html, tmp_path, "#sort=score")
    table = attrs_of(page, "table", id="flags-table")[0]
    assert (table["data-sort-key"], table["data-sort-dir"]) == ("score", "desc")
    scores = [float(a["data-score"] or 0) for a in flag_rows(page)]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6
    page = dump_dom(html, tmp_path, "#sort=score&dir=asc")
    scores = [float(a["data-score"] or 0) for a in flag_rows(page)]
    assert scores == sorted(scores) and scores[0] == 0.55
    th = attrs_of(page, "th", **{"data-key": "score"})[0]
    assert th["aria-sort"] == "ascending"

    page = dump_dom(html, tmp_path, "#sort=character")
    chars = [a["data-character"] for a in flag_rows(page)]
    assert chars == ["Kitsune Blade"] * 3 + ["ミカ・ソラ"] * 3

    page = dump_dom(html, tmp_path, "#sort=detected&dir=asc&platform=youtube")
    rows = flag_rows(page)
    shown = [a for a in rows if "hidden" not in a]
    assert len(rows) == 6 and len(shown) == 3
    assert {a["data-platform"] for a in shown} == {"youtube"}
    assert re.search(r'id="flt-count">3 of 6<', page.raw)

    page = dump_dom(html, tmp_path, "#q=" + "踊ってみた")
    shown = [a for a in flag_rows(page) if "hidden" not in a]
    assert [a["data-platform"] for a in shown] == ["tiktok"]


def test_zero_flag_report_and_screenshot(report: tuple[Fixture, Path], tmp_path: Path) -> None:
    fx, html = report
    shot = tmp_path / "report.png"
    chromium(
        html.as_uri(),
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1366,2400",
        "--hide-scrollbars",
    )
    assert shot.is_file()
    with Image.open(shot) as im:
        assert im.size == (1366, 2400)
        colors = im.convert("RGB").resize((64, 64)).getcolors(64 * 64) or []
        assert len(colors) > 20, "the screenshot shows a rendered page"

    empty = write_report(
        fx.cfg,
        fx.store,
        since=UNTIL.replace(year=2030),
        until=UNTIL.replace(year=2030, day=25),
        out_dir=tmp_path / "out",
    )
    page = dump_dom(empty.html_path, tmp_path)
    assert html_root(page).get("data-ready") == "1"
    assert "No flags in this period." in "".join(page.text)
    assert not [a for t, a in page.tags if t == "article"]
    shot = tmp_path / "empty.png"
    chromium(empty.html_path.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1366,900")
    assert shot.is_file()
