"""The review desk end to end: the real ``charwatch serve`` on 127.0.0.1 over a real SQLite
store, driven with plain HTTP and with headless Chromium (Playwright)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from reports import write_report
from storage import AllowedAccount, Detection, Frame, Reference, ReviewEvent
from storage.users import add_user
from tests.conftest import CHROMIUM, needs_chromium, run_cli
from tests.desk_support import (
    IMG_PAYLOAD,
    SCRIPT_PAYLOAD,
    SPECS,
    Client,
    DeskLab,
    build_lab,
    desk_server,
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskLab]:
    lab = build_lab(tmp_path_factory.mktemp("desk"))
    yield lab
    lab.store.dispose()


@pytest.fixture(scope="module")
def url(lab: DeskLab) -> Iterator[str]:
    with desk_server(lab.config, tmp_dir=lab.root / "server-tmp") as base:
        yield base


def analyst(url: str, lab: DeskLab) -> Client:
    c = Client(url)
    assert c.login("ana", lab.passwords["ana"]).status == 303
    return c


def form_token(c: Client, path: str) -> str:
    return c.csrf(path)


def events(lab: DeskLab, key: str) -> list[ReviewEvent]:
    with lab.store.session() as s:
        return list(s.scalars(select(ReviewEvent).where(ReviewEvent.detection_id == lab.ids[key])))


# ---------------------------------------------------------------------------------------------
# plain HTTP


def test_every_page_needs_a_login(url: str, lab: DeskLab) -> None:
    c = Client(url)
    d = lab.ids["forged"]
    for path in (
        "/",
        "/queue",
        f"/detections/{d}",
        f"/media/best/{d}",
        f"/detections/{d}/evidence.zip",
        "/reports/",
    ):
        r = c.get(path)
        assert r.status in (302, 303), (path, r.status)
        if path != "/":
            assert r.location.startswith("/login?next="), (path, r.location)
    page = c.get("/login")
    assert page.status == 200
    assert 'name="username"' in page.text and 'name="password"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    # a POST with a valid token but no login changes nothing
    r = c.post(f"/detections/{d}/review", {"csrf_token": token, "state": "confirmed"})
    assert r.status == 401
    assert lab.state("forged") == "new"
    assert c.get("/static/desk.css").status == 200  # the login page's own style


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(url: str, lab: DeskLab) -> None:
    c = Client(url)
    bad = c.login("ana", "not-the-password")
    assert bad.status == 401 and "Wrong name or password" in bad.text
    assert c.get("/queue").status == 302
    ok = c.login("ana", lab.passwords["ana"])
    assert ok.status == 303 and ok.location == "/queue"
    cookie = next(h for h in ok.set_cookies() if h.startswith("charwatch_desk="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    page = c.get("/queue")
    assert page.status == 200 and ">ana<" in page.text
    h = page.headers
    assert "default-src 'none'" in h["Content-Security-Policy"]
    assert "script-src 'self'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    assert h["Cache-Control"] == "no-store"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert c.post("/logout", {"csrf_token": token}).status == 303
    assert c.get("/queue").status == 302


def test_failed_logins_are_limited(url: str, lab: DeskLab) -> None:
    password = add_user(lab.store, "lockme", "viewer")
    c = Client(url)
    for _ in range(3):  # serve.login_max_failures = 3 in the lab's config
        assert c.login("lockme", "wrong").status == 401
    refused = c.login("lockme", password)
    assert refused.status == 429 and "Too many failed logins" in refused.text
    assert c.get("/queue").status == 302  # not logged in


def test_analyst_confirms_and_rejects_through_the_forms(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["http_confirm"]
    page = c.get(f"/detections/{d}")
    assert page.status == 200
    assert re.search(r'<button type="submit" name="state" value="confirmed"[^>]*>Confirm</button>',
                     page.text)  # fmt: skip
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post(
        f"/detections/{d}/review",
        {"csrf_token": token, "state": "confirmed", "note": "same pose as the official art"},
    )
    assert r.status == 303 and r.location.startswith(f"/detections/{d}")
    det = lab.detection("http_confirm")
    assert det.review_state == "confirmed" and det.reviewed_by == "ana"
    assert det.reviewed_at is not None and det.review_note == "same pose as the official art"
    [ev] = events(lab, "http_confirm")
    assert (ev.old_state, ev.new_state, ev.reviewer) == ("new", "confirmed", "ana")
    after = c.get(r.location)
    assert "new → confirmed" in after.text and 'id="history"' in after.text

    r = c.post(
        f"/detections/{lab.ids['http_reject']}/review", {"csrf_token": token, "state": "rejected"}
    )
    assert r.status == 303
    assert lab.state("http_reject") == "rejected"
    # the CLI reads the same store: the verdict and who gave it
    res = run_cli("detections", "--state", "confirmed", "--format", "jsonl", config=lab.config)
    rows = {json.loads(line)["id"]: json.loads(line) for line in res.stdout.splitlines()}
    assert rows[d]["reviewed_by"] == "ana"


def test_moves_the_states_do_not_allow_are_refused(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["refused"]
    token = form_token(c, f"/detections/{d}")
    r = c.post(f"/detections/{d}/review", {"csrf_token": token, "state": "notice_sent"})
    assert r.status == 409
    assert "cannot go from new to notice_sent" in r.text
    r = c.post(f"/detections/{d}/review", {"csrf_token": token, "state": "deleted"})
    assert r.status == 409 and "unknown review state" in r.text
    assert lab.state("refused") == "new" and not events(lab, "refused")
    assert (
        c.post("/detections/999999/review", {"csrf_token": token, "state": "rejected"}).status
        == 404
    )


def test_bulk_verdicts_apply_the_same_rules(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    token = form_token(c, "/queue")
    ids = [lab.ids[k] for k in ("bulk_a", "bulk_b", "bulk_done")]
    r = c.post(
        "/queue/review",
        {"csrf_token": token, "ids": ids, "state": "confirmed", "back": "state=all"},
    )
    assert r.status == 303 and r.location == "/queue?state=all"
    assert lab.state("bulk_a") == lab.state("bulk_b") == "confirmed"
    assert lab.state("bulk_done") == "notice_sent"  # notice_sent -> confirmed is not a move
    page = c.get(r.location)
    assert "2 flag(s) → confirmed" in page.text
    assert f"detection {lab.ids['bulk_done']}: cannot go from notice_sent to confirmed" in page.text
    assert {e.reviewer for e in events(lab, "bulk_a")} == {"ana"}


def test_forged_posts_without_the_token_are_refused(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["forged"]
    other = analyst(url, lab)  # a token of another session is no good either
    foreign = form_token(other, "/queue")
    for data in (
        {"state": "confirmed"},
        {"state": "confirmed", "csrf_token": ""},
        {"state": "confirmed", "csrf_token": "forged-token"},
        {"state": "confirmed", "csrf_token": foreign},
    ):
        r = c.post(f"/detections/{d}/review", data)
        assert r.status == 403, data
        assert "security token" in r.text
    r = c.post("/queue/review", {"ids": [d], "state": "rejected"})
    assert r.status == 403
    r = c.post(f"/detections/{d}/allow", {"scope": "all"})
    assert r.status == 403
    assert lab.state("forged") == "new" and not events(lab, "forged")


def test_viewers_read_but_change_nothing(url: str, lab: DeskLab) -> None:
    c = Client(url)
    assert c.login("vic", lab.passwords["vic"]).status == 303
    d = lab.ids["viewer"]
    queue = c.get("/queue?state=all")
    assert queue.status == 200 and "With the ticked flags" not in queue.text
    page = c.get(f"/detections/{d}")
    assert page.status == 200
    assert 'id="review-form"' not in page.text and "read but not change" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    with lab.store.session() as s:
        frame_id = s.scalar(
            select(Frame.id).where(Frame.video_id == lab.detection("viewer").video_id)
        )
        refs = s.scalar(select(Reference.id).order_by(Reference.id.desc()).limit(1))
    for path, data in (
        (f"/detections/{d}/review", {"state": "confirmed"}),
        ("/queue/review", {"ids": [d], "state": "rejected"}),
        (f"/detections/{d}/allow", {"scope": "all"}),
        (f"/detections/{d}/reference", {"frame_id": frame_id, "kind": "negative"}),
    ):
        r = c.post(path, {"csrf_token": token, **data})
        assert r.status == 403, path
        assert "viewer" in r.text
    assert lab.state("viewer") == "new"
    with lab.store.session() as s:
        assert not list(
            s.scalars(select(AllowedAccount).where(AllowedAccount.author == "viewer_target"))
        )
        assert s.scalar(select(Reference.id).order_by(Reference.id.desc()).limit(1)) == refs
    assert c.get(f"/detections/{d}/evidence.zip").status == 200  # reading evidence is fine


def test_allow_the_account_and_add_a_frame_as_a_reference(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["allow"]
    token = form_token(c, f"/detections/{d}")
    r = c.post(
        f"/detections/{d}/allow",
        {"csrf_token": token, "scope": "character", "also_reject": "1", "note": "licensed"},
    )
    assert r.status == 303
    with lab.store.session() as s:
        [row] = s.scalars(select(AllowedAccount).where(AllowedAccount.author == "Pom_Official"))
        assert (row.platform, row.note) == ("tiktok", "licensed") and row.character_id is not None
    assert lab.state("allow") == "rejected" and lab.detection("allow").reviewed_by == "ana"
    again = c.post(f"/detections/{d}/allow", {"csrf_token": token, "scope": "character"})
    assert again.status == 409 and "already allowed" in again.text
    page = c.get(f"/detections/{d}")
    assert "allow-listed for Pompom" in page.text

    d = lab.ids["reference"]
    with lab.store.session() as s:
        video_id = lab.detection("reference").video_id
        frame = s.scalar(select(Frame).where(Frame.video_id == video_id, Frame.t == 3.0))
        elsewhere = s.scalar(select(Frame.id).where(Frame.video_id != video_id).limit(1))
    r = c.post(
        f"/detections/{d}/reference",
        {"csrf_token": token, "frame_id": frame.id, "kind": "negative"},
    )
    assert r.status == 303
    assert "as a negative reference" in c.get(r.location).text
    with lab.store.session() as s:
        ref = s.scalar(select(Reference).order_by(Reference.id.desc()).limit(1))
        assert ref.negative and ref.label == f"frame 0:03 of detection {d}"
        assert (lab.cfg.data_dir / ref.path).is_file()
    bad = c.post(
        f"/detections/{d}/reference",
        {"csrf_token": token, "frame_id": elsewhere, "kind": "positive"},
    )
    assert bad.status == 400 and "frame is not one of this video" in bad.text


def test_images_evidence_and_reports(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["browser_reject"]
    best = c.get(f"/media/best/{d}")
    assert best.status == 200 and best.headers["Content-Type"] == "image/jpeg"
    assert best.body[:2] == b"\xff\xd8"
    ref = c.get(f"/media/reference/{lab.reference_ids[0]}")
    assert ref.status == 200 and ref.headers["Content-Type"] == "image/png"
    assert c.get("/media/frame/987654").status == 404
    assert c.get("/media/reference/987654").status == 404
    ev = c.get(f"/detections/{d}/evidence.zip")
    assert ev.status == 200 and ev.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(ev.body)) as zf:
        manifest = next(n for n in zf.namelist() if n.endswith("/manifest.json"))
        assert json.loads(zf.read(manifest))["detection"]["id"] == d
    assert not list((lab.root / "server-tmp").iterdir())  # the bundle's folder is gone
    assert c.get("/reports/").status == 404  # none written yet
    res = write_report(lab.cfg, lab.store)
    index = c.get("/reports/")
    assert index.status == 200 and res.html_path.name in index.text
    report = c.get(f"/reports/{res.html_path.name}")
    assert report.status == 200 and "matched reference" in report.text
    assert "script-src 'unsafe-inline'" in report.headers["Content-Security-Policy"]
    page = c.get(f"/detections/{d}")
    video_id = lab.detection("browser_reject").video_id
    assert f'href="/reports/{res.html_path.name}#v-{video_id}" id="report"' in page.text
    assert c.get("/reports/..%2Fcharwatch.toml").status == 404
    assert c.get("/reports/charwatch.db").status == 404


def test_the_detection_page_shows_a_valid_estimated_precision_only(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["bulk_done"]
    with lab.store.session() as s:
        original = dict(s.get(Detection, d).signals)

    def page_with(estimate: float | None) -> str:
        with lab.store.session() as s:
            det = s.get(Detection, d)
            fusion = {**original["fusion"], "estimated_precision": estimate}
            det.signals = {**original, "fusion": {**fusion, "precision_verdicts": 40}}
            s.commit()
        return c.get(f"/detections/{d}").text

    try:
        assert 'id="est-precision"' not in c.get(f"/detections/{d}").text  # none stored
        assert "est. precision <b>93%</b>" in page_with(0.93)
        assert 'id="est-precision"' not in page_with(None)
        assert 'id="est-precision"' not in page_with(1.7)  # not a share: not shown
    finally:
        with lab.store.session() as s:
            s.get(Detection, d).signals = original
            s.commit()


def test_hostile_text_is_escaped_in_every_page(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)
    d = lab.ids["hostile"]
    for path in ("/queue?state=all", f"/detections/{d}", "/queue?q=script&state=all"):
        page = c.get(path)
        assert page.status == 200
        assert "&lt;script&gt;window.__pwned=1" in page.text, path
        assert "<script>window" not in page.text and "<img src=x" not in page.text
        assert 'href="javascript:' not in page.text
    assert c.get("/queue?q=%3Cscript&state=all").text.count('class="row"') == 1


def test_queue_filters_and_sorts(url: str, lab: DeskLab) -> None:
    c = analyst(url, lab)

    def ids(page: Any) -> list[int]:
        return [int(x) for x in re.findall(r'<tr class="row" data-id="(\d+)"', page.text)]

    everything = ids(c.get("/queue?state=all&per_page=100"))
    assert sorted(everything) == sorted(lab.ids.values())
    youtube = {lab.ids[key] for key, platform, *_ in SPECS if platform == "youtube"}
    assert set(ids(c.get("/queue?state=all&platform=youtube"))) == youtube
    by_score = ids(c.get("/queue?state=all&sort=score_asc&per_page=100"))
    score = {v: lab.detection(k).score for k, v in lab.ids.items()}
    assert [score[i] for i in by_score] == sorted(score.values())
    page = c.get("/queue?state=all&per_page=25&min_score=0.9")
    assert 'data-total="3"' in page.text  # 0.95, 0.93, 0.91
    first = c.get("/queue?state=all&per_page=25&sort=oldest")
    assert ids(first)[0] == lab.ids["browser_confirm"]


# ---------------------------------------------------------------------------------------------
# headless Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip("headless Chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


def browser_login(browser: Any, url: str, name: str, password: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(15_000)
    page.goto(url + "/queue")
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/queue")
    return page


@needs_chromium
def test_browser_confirm_and_reject(browser: Any, url: str, lab: DeskLab) -> None:
    page = browser_login(browser, url, "ana", lab.passwords["ana"])
    d = lab.ids["browser_confirm"]
    page.click(f'tr[data-id="{d}"] a.open')
    page.wait_for_url(f"**/detections/{d}*")
    assert "matched reference Pompom, front at 0:03" in page.inner_text("#why")
    assert "caption names the alias ポム" in page.inner_text("#why")
    page.get_by_role("button", name="Confirm", exact=True).click()
    page.wait_for_load_state()
    assert page.inner_text("#state") == "confirmed"
    assert lab.state("browser_confirm") == "confirmed"
    assert lab.detection("browser_confirm").reviewed_by == "ana"

    page.goto(url + f"/detections/{lab.ids['browser_reject']}")
    page.fill("#review-form textarea[name=note]", "a generic plush, not the character")
    page.get_by_role("button", name="Reject", exact=True).click()
    page.wait_for_load_state()
    assert page.inner_text("#state") == "rejected"
    det = lab.detection("browser_reject")
    assert (
        det.review_state == "rejected" and det.review_note == "a generic plush, not the character"
    )
    page.context.close()


@needs_chromium
def test_browser_keyboard_shortcuts(browser: Any, url: str, lab: DeskLab) -> None:
    page = browser_login(browser, url, "ana", lab.passwords["ana"])
    assert page.get_attribute("html", "data-desk-js") == "1"
    page.keyboard.press("j")
    first = page.locator("tr.row").first
    assert "cursor" in (first.get_attribute("class") or "")
    page.keyboard.press("x")
    assert first.locator("input[type=checkbox]").is_checked()
    page.keyboard.press("x")
    assert not first.locator("input[type=checkbox]").is_checked()
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()

    page.goto(url + f"/detections/{lab.ids['keys']}")
    page.keyboard.press("r")
    page.wait_for_load_state()
    page.wait_for_selector("#state:has-text('rejected')")
    assert lab.state("keys") == "rejected"
    page.context.close()


@needs_chromium
def test_browser_without_javascript(browser: Any, url: str, lab: DeskLab) -> None:
    page = browser_login(browser, url, "ana", lab.passwords["ana"], java_script_enabled=False)
    assert page.get_attribute("html", "data-desk-js") is None
    page.goto(url + f"/detections/{lab.ids['nojs']}")
    page.get_by_role("button", name="Confirm", exact=True).click()
    page.wait_for_load_state()
    assert page.inner_text("#state") == "confirmed"
    assert lab.state("nojs") == "confirmed"
    page.context.close()


@needs_chromium
def test_browser_hostile_captions_never_execute(browser: Any, url: str, lab: DeskLab) -> None:
    page = browser_login(browser, url, "ana", lab.passwords["ana"])
    dialogs: list[str] = []
    page.on("dialog", lambda dlg: (dialogs.append(dlg.message), dlg.dismiss()))
    for path in ("/queue?state=all", f"/detections/{lab.ids['hostile']}"):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert page.get_attribute("body", "data-pwned") is None
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("a[href^='javascript']").count() == 0
        assert "pwned" not in page.title()
    assert page.inner_text("#caption") == SCRIPT_PAYLOAD
    assert page.inner_text("#author").startswith(IMG_PAYLOAD)
    assert not dialogs
    page.context.close()


@needs_chromium
def test_browser_viewer_has_no_actions(browser: Any, url: str, lab: DeskLab) -> None:
    page = browser_login(browser, url, "vic", lab.passwords["vic"])
    page.goto(url + f"/detections/{lab.ids['viewer']}")
    assert page.get_by_role("button", name="Confirm", exact=True).count() == 0
    assert "read but not change" in page.inner_text(".actions")
    page.keyboard.press("c")  # the shortcut finds no button to press
    assert lab.state("viewer") == "new"
    page.context.close()
