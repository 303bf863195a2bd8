"""The demo: the whole chain on the built-in fixture platform, checked against its ground truth."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from charwatch import jobs
from charwatch.config import PLATFORMS, Config
from charwatch.printing import print_process, print_runs
from storage import Character, Detection, Store, Video

DEMO_HASHTAG = "charwatchdemo"


@dataclass
class DemoOutcome:
    """Flags compared with what the fixture videos really show."""

    expected: set[tuple[str, str, str]] = field(default_factory=set)
    flagged: set[tuple[str, str, str]] = field(default_factory=set)
    videos: int = 0
    report: Any = None
    seconds: float = 0.0

    @property
    def missed(self) -> set[tuple[str, str, str]]:
        return self.expected - self.flagged

    @property
    def false_flags(self) -> set[tuple[str, str, str]]:
        return self.flagged - self.expected

    @property
    def ok(self) -> bool:
        return bool(self.expected) and not self.missed and not self.false_flags


def demo_config(cfg: Config, data_dir: Path, base_url: str) -> Config:
    """The user's config pointed at the fixture platform and a separate demo data folder."""
    demo = copy.deepcopy(cfg)
    demo.storage.data_dir = str(data_dir)
    demo.storage.url = ""
    demo.report.out_dir = ""
    for name in PLATFORMS:
        p = demo.platforms.get(name)
        p.base_url = base_url
        p.download_delay = 0.0
        p.sleep_interval = p.sleep_requests = 0.0
        p.max_downloads_per_hour = 0
        p.proxy = ""
        # the fixture's demo listings answer plain HTTP; the browser mode has its own tests
        p.fetch = {kind: "http" for kind in ("hashtag", "user", "search")}
    demo.platforms.instagram.cookies = {"sessionid": "demo-session"}
    demo.crawl.autothrottle = False
    return demo


def register_demo_characters(
    cfg: Config, store: Store, refs: dict[str, list[Path]] | None = None
) -> dict[str, int]:
    """Register the registered demo characters not yet in ``store``, from ``refs`` (key ->
    reference images; drawn under ``data_dir`` when omitted). Returns ``{key: character id}``
    of those it added."""
    from fixture_platform.characters import DEMO_CHARACTERS, write_reference_images
    from index import registry

    with store.session() as s:
        known = set(s.scalars(select(Character.name)))
    if refs is None:
        refs = write_reference_images(cfg.data_dir / "demo-references")
    added: dict[str, int] = {}
    for ch in DEMO_CHARACTERS:
        if not ch.registered or ch.name in known:
            continue
        c = registry.add_character(
            cfg,
            store,
            ch.name,
            franchise=ch.franchise,
            aliases=list(ch.aliases),
            images=refs[ch.key],
        )
        added[ch.key] = c.id
    return added


def compare(store: Store, catalog: Any) -> DemoOutcome:
    """Flags in the store against the fixture's ground truth, over the videos crawled."""
    out = DemoOutcome()
    with store.session() as s:
        videos = list(s.scalars(select(Video)))
        rows = s.execute(
            select(Video.platform, Video.platform_id, Character.name)
            .join(Detection, Detection.video_id == Video.id)
            .join(Character, Character.id == Detection.character_id)
        ).all()
    out.videos = len(videos)
    for v in videos:
        name = catalog.expected_character(v.platform, v.platform_id)
        if name:
            out.expected.add((v.platform, v.platform_id, name))
    out.flagged = {(p, i, n) for p, i, n in rows}
    return out


def run_demo(cfg: Config, *, data_dir: Path | None = None, progress: bool = True) -> DemoOutcome:
    """Serve the fixture platform, register, crawl, process, report; print where the report is."""
    from fixture_platform.characters import DEMO_CHARACTERS
    from fixture_platform.server import FixtureServer

    t0 = time.monotonic()
    data_dir = data_dir or cfg.data_dir / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    with FixtureServer(media_dir=data_dir / "fixture-media") as server:
        dcfg = demo_config(cfg, data_dir, server.base_url)
        store = jobs.open_store(dcfg)
        print(f"fixture platform: {server.base_url}")
        added = register_demo_characters(dcfg, store)
        names = ", ".join(ch.name for ch in DEMO_CHARACTERS if ch.key in added)
        print(f"characters: {len(added)} registered" + (f" ({names})" if added else ""))
        listings = [jobs.make_listing(p, hashtag=DEMO_HASHTAG) for p in PLATFORMS]
        runs = jobs.crawl(dcfg, store, listings)
        print(f"crawled {len(runs)} listing(s):")
        print_runs(runs)
        result = jobs.process(dcfg, store, progress=progress)
        print_process(result)
        outcome = compare(store, server.catalog)
        outcome.report = jobs.report(dcfg, store)
    outcome.seconds = time.monotonic() - t0
    print(
        f"demo result: {len(outcome.flagged & outcome.expected)}/{len(outcome.expected)} "
        f"videos showing a demo character flagged, {len(outcome.false_flags)} false flag(s) "
        f"among {outcome.videos} videos ({outcome.seconds:.0f} s)"
    )
    for p, i, n in sorted(outcome.missed):
        print(f"  missed: {p} {i} ({n})")
    for p, i, n in sorted(outcome.false_flags):
        print(f"  false flag: {p} {i} ({n})")
    print(f"HTML report: {outcome.report.html_path}")
    print(f"CSV:         {outcome.report.csv_path}")
    return outcome
