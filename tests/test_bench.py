"""The benchmarks: metric definitions, the transformations, and the quick run end to end.

The quick run is a smoke test: it checks that every section ran through the real code and
wrote sane numbers, never how fast anything was.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench import metrics
from bench import transforms as tr
from bench.index_scale import choose_index
from bench.quality import FULL, QUICK, Processed, build_set, processed_cache

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# metrics


def test_micro_ap_matches_hand_computed_values() -> None:
    # ranked: P N P N, 3 positives in all (one never scored): (1/1 + 2/3) / 3
    scores = [0.9, 0.8, 0.7, 0.1, float("-inf")]
    labels = [True, False, True, False, True]
    assert metrics.micro_ap(scores, labels) == pytest.approx((1 + 2 / 3) / 3)
    assert metrics.micro_ap([0.5, 0.4], [True, True]) == pytest.approx(1.0)
    assert metrics.micro_ap([0.5, 0.4], [False, False]) == 0.0


def test_ties_never_favour_a_positive() -> None:
    # a positive tied with a negative counts as ranked after it
    assert metrics.micro_ap([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert metrics.micro_ap([0.5, 0.5], [False, True]) == pytest.approx(0.5)


def test_recall_at_precision_and_its_threshold() -> None:
    scores = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [True, True, False, True, True, False]
    # cut after 0.9: P=1, R=0.5; after 0.6: P=4/5 < 0.9; so the best at P>=0.9 is R=0.5
    rec, thr = metrics.recall_at_precision(scores, labels, 0.9)
    assert (rec, thr) == (0.5, 0.9)
    rec, thr = metrics.recall_at_precision(scores, labels, 0.8)
    assert (rec, thr) == (1.0, 0.6)
    assert metrics.recall_at_precision([0.3], [False], 0.9) == (0.0, None)


def test_decision_counts_and_recall_at_k() -> None:
    c = metrics.decision_counts([True, True, False, False], [True, False, True, False])
    assert (c.tp, c.fp, c.positives) == (1, 1, 2)
    assert c.recall == 0.5 and c.precision == 0.5
    assert metrics.per_thousand(3, 600) == pytest.approx(5.0)
    found = [[1, 2, 3], [7, 8, 9]]
    truth = [[3, 2, 1], [7, 0, 5]]
    assert metrics.recall_at_k(found, truth, 3) == pytest.approx((1 + 1 / 3) / 2)
    with pytest.raises(ValueError):
        metrics.micro_ap([0.1, 0.2], [True])


# ---------------------------------------------------------------------------------------------
# the set and the transformations


@pytest.mark.parametrize("size", [FULL, QUICK], ids=["full", "quick"])
def test_the_set_has_five_times_as_many_negatives(size) -> None:
    qs = build_set(7, size)
    pos = [it for it in qs.items if it.character]
    neg = [it for it in qs.items if not it.character]
    assert len(pos) == size.positives
    assert len(neg) >= 5 * len(pos)
    assert {it.transform for it in pos} == set(size.transforms)
    assert build_set(7, size).items == qs.items  # reproducible from the seed


def test_full_set_covers_the_issue_transformations() -> None:
    wanted = {
        "crop", "scale", "pip", "text_emoji", "hflip", "color", "blur", "noise", "lowbitrate",
        "speed_fps", "letterbox", "facecam", "split", "subtitles", "partial",
    }  # fmt: skip
    assert wanted <= set(FULL.transforms)


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory: pytest.TempPathFactory) -> tr.Sources:
    from fixture_platform.videos import VideoSpec, make_video

    d = tmp_path_factory.mktemp("tr")
    base = make_video(VideoSpec(seed=1, character="pompom", duration_s=2.0, ui=False), d / "p.mp4")
    land = make_video(
        VideoSpec(seed=2, character="pompom", duration_s=2.0, width=640, height=360, scale=0.5),
        d / "l.mp4",
    )
    filler = make_video(VideoSpec(seed=3, background="room", duration_s=2.0), d / "f.mp4")
    return tr.Sources(base, land, filler, d, 2.0)


@pytest.mark.parametrize("name", list(tr.BY_NAME))
def test_every_transformation_writes_a_playable_clip(name: str, tiny_sources, tmp_path) -> None:
    from charwatch.config import ProcessConfig
    from pipeline.frames import sample_frames
    from pipeline.media import probe

    tiny_sources.scratch = tr.scratch_dir(tmp_path)
    out = tr.apply(name, tiny_sources, tmp_path / f"{name}.mp4", random.Random(5))
    info = probe(out)
    assert info.has_video and info.error is None
    assert 0.5 <= (info.duration or 0) <= 2.1
    expected = {"scale": (180, 320), "lowbitrate": (270, 480), "pillarbox": (640, 360)}
    assert (info.width, info.height) == expected.get(name, (tr.W, tr.H))
    assert sample_frames(out, ProcessConfig())  # the pipeline decodes it


def test_a_failing_transformation_raises_a_clear_error(tiny_sources, tmp_path) -> None:
    broken = tr.Sources(tmp_path / "missing.mp4", tmp_path / "x.mp4", tmp_path / "y.mp4",
                        tmp_path, 2.0)  # fmt: skip
    with pytest.raises(tr.TransformError, match="hflip: ffmpeg failed"):
        tr.apply("hflip", broken, tmp_path / "out.mp4", random.Random(1))
    assert not (tmp_path / "out.mp4").exists()


def test_processed_videos_are_kept_and_read_back_only_with_reuse(tmp_path: Path) -> None:
    made: list[int] = []

    def make() -> dict[str, Processed]:
        made.append(1)
        return {"v": Processed(name="v", path=f"clip-{len(made)}.mp4", regions=["full"])}

    keep = tmp_path / "processed.pickle"
    assert processed_cache(keep, False, make)["v"].path == "clip-1.mp4"
    assert not keep.exists()  # without reuse nothing is kept
    first = processed_cache(keep, True, make)
    again = processed_cache(keep, True, make)
    assert len(made) == 2 and keep.is_file()
    assert again["v"].path == first["v"].path == "clip-2.mp4" and again["v"].regions == ["full"]


def test_index_type_is_chosen_by_size() -> None:
    assert choose_index(10_000, 512).factory == "Flat"
    assert choose_index(1_000_000, 512).factory == "IVF4096,SQ8"
    ten_m = choose_index(10_000_000, 512)
    assert ten_m.factory == "IVF16384,PQ64" and ten_m.code_bytes(512) == 64


def _breakdown(flagged: int, wrong: int) -> dict:
    kind = {"videos": 40, "false_flag_videos": 0}
    return {
        "all": {"wrong_character": wrong},
        "kinds": {"unregistered": {**kind, "false_flag_videos": flagged}, "look-alike": kind},
    }


def test_same_style_precision_targets_count_the_unseen_family() -> None:
    from bench.run import samestyle_targets

    def targets(first: tuple[int, int], unseen: tuple[int, int] | None) -> list[dict]:
        """The strangers-flagged and wrong-character targets, in that order."""
        ss: dict = {"production": _breakdown(*first)}
        if unseen is not None:
            ss["unseen_family"] = {"set": {"family_seed": 13}, "production": _breakdown(*unseen)}
        return [t for t in samestyle_targets(ss) if t["target"].startswith("same style:")]

    rate, wrong = targets((0, 0), None)
    assert rate["met"] and rate["measured"] == "0.0 per 1,000 (0 of 80)"
    assert wrong["met"] and wrong["measured"] == "0 videos"
    # 0 of 80 in the first family, 2 of 80 in the unseen one: 12.5 per 1,000 over both
    rate, wrong = targets((0, 0), (2, 1))
    assert not rate["met"] and "family 13: 2 of 80; both: 12.5 per 1,000" in rate["measured"]
    assert not wrong["met"] and wrong["measured"] == "0 videos (family 13: 1)"
    rate, _ = targets((1, 0), (0, 0))  # 1 of 160: 6.2 per 1,000, under the bar of 10
    assert rate["met"] and rate["measured"].startswith("12.5 per 1,000 (1 of 80)")


def test_the_ceiling_is_the_best_single_threshold_per_kind() -> None:
    from bench.quality import PairRow
    from bench.samestyle import ceiling

    def video(name: str, kind: str, truth: str | None, a: float, b: float) -> list[PairRow]:
        common = {"video": name, "transform": "reencode", "group": "easy", "kind": kind}
        return [
            PairRow(
                **common,
                character=c,
                label=c == truth,
                negative_video=truth is None,
                scores={"fused": score},
                decisions={"fused": False},
            )
            for c, score in (("A", a), ("B", b))
        ]

    rows = [r for i in range(19) for r in video(f"new{i}", "render", "A", 0.8, 0.1)]
    rows += video("new19", "render", "B", 0.2, 0.7)  # found only below the stranger's score
    rows += video("stranger", "unregistered", None, 0.75, 0.1)
    rows += video("scene", "scene", None, 0.05, 0.05)
    rows += video("copy", "art", "A", 0.99, 0.3)
    c = ceiling(rows)
    new, copy = c["new drawing"], c["copy"]
    # at 0.7: 20 right pairs, the stranger's wrong one: precision 20/21 >= 0.95, recall 1.0
    assert new["best"] == {"recall": 1.0, "threshold": 0.7, "negatives_flagged": 1}
    # with at most 10 of 1,000 strangers flagged, 0.8 is the lowest threshold: 19 of 20
    assert new["best_all_goals"] == {"recall": 0.95, "threshold": 0.8, "negatives_flagged": 0}
    # the copy is ranked against the negatives alone, not against the new drawings
    assert copy["best"] == {"recall": 1.0, "threshold": 0.99, "negatives_flagged": 0}
    assert copy["videos"] == 1 and new["videos"] == 20


# ---------------------------------------------------------------------------------------------
# the quick run


def _unit(v: float | None) -> bool:
    return v is not None and 0.0 <= v <= 1.0


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quick_benchmark_writes_sane_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    md = (out / "latest.md").read_text()
    assert data["mode"] == "quick"

    q = data["quality"]
    assert not q["set"]["failed_videos"]
    assert q["set"]["negative_videos"] >= 5 * q["set"]["positive_videos"] > 0
    for name in ("fused", "pdq", "embedding", "naive_full_frame"):
        sig = q["signals"][name]
        assert _unit(sig["micro_ap"]) and _unit(sig["recall_at_p90"]), (name, sig)
    fused = q["signals"]["fused"]
    assert fused["pairs"] == 3 * q["set"]["videos"]
    assert 0 <= fused["fp_per_1000_negative_videos"] <= 1000
    assert fused["micro_ap"] > 0  # the registered characters are found at all
    assert set(q["transforms"]) == set(QUICK.transforms)
    pairs = json.loads((out / "latest-pairs.json").read_text())
    assert len(pairs) == fused["pairs"]

    ss = data["samestyle"]
    assert not ss["set"]["failed_videos"] and ss["set"]["positive_videos"] > 0
    assert set(ss["production"]["kinds"]) == {
        "copy",
        "new drawing",
        "unregistered",
        "look-alike",
        "scene",
    }
    assert _unit(ss["fused"]["micro_ap"]) and ss["fused"]["micro_ap"] > 0

    tp = data["throughput"]
    eff = tp["cases"]["effnet-lite0"]
    assert "error" not in eff, eff
    assert eff["processed"] == tp["videos_per_case"] and eff["failed"] == 0
    assert eff["shorts_per_min"] > 0 and eff["peak_rss_mb"] > 0
    assert eff["queued"] >= tp["videos_per_case"]
    assert all(v > 0 for k, v in eff["stages"].items() if k.endswith("_per_s"))
    cpu = eff["stages"]["cpu_s_per_short"]
    assert set(cpu) == {"download", "decode", "hash", "embed", "load", "signals", "fusion"}
    assert cpu["embed"] > 0 and cpu["decode"] > 0 and cpu["download"] > 0
    assert "geometric" in eff["stages"]["signal_cpu_s_per_short"]
    naive = tp["cases"]["naive"]
    assert naive["frames"] >= tp["videos_per_case"] and naive["shorts_per_min"] > 0
    assert naive["stages"]["cpu_s_per_short"]["embed"] > 0
    assert "CPU seconds per short, stage by stage" in md and "Floor: " in md

    rows = data["registry"]["rows"]
    assert [(r["characters"], r["search"]) for r in rows] == [
        (n, s) for n in (8, 24) for s in ("exact", "inverted file")
    ]
    for r in rows:
        assert r["ms_per_frame"] > 0 and 0 <= r["copies_verified"] <= r["copies"] == 32
        assert 0 <= r["damaged_verified"] <= r["damaged"] == 32
        assert sum(r["damaged_by_kind"].values()) == r["damaged_verified"]
        assert r["descriptors"] > 1000 * r["characters"]  # 4 pictures, each also mirrored
    small = [r for r in rows if r["characters"] == 8 and r["production"]]
    assert len(small) == 1 and small[0]["copies_verified"] >= 28  # a small registry

    sizes = data["index"]["sizes"]
    assert {s["scheme"] for s in sizes} == {"compressed", "archive"}
    for size in sizes:
        assert "error" not in size, size
        assert size["vectors"] == 100_000 and size["index"].startswith("IVF")
        assert _unit(size["chosen"]["recall_at_10"]) and size["chosen"]["ms_per_query_median"] > 0
        assert math.isfinite(size["index_mb"])

    cl = data["cluster"]
    if "claims" in cl:  # PostgreSQL installed
        new = [r for r in cl["claims"]["results"] if r["claim"] == "new"]
        assert {r["clients"] for r in new} == {1, 8, 32}
        assert all(r["claims_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in new)
        assert "workers" in cl["skipped"]  # quick mode: the cluster tests cover the workers
    shards = cl["shards"]["search"]
    assert _unit(shards["recall_at_10_merged_refined"]) and shards["merged_refined_ms_p50"] > 0

    headings = ("### Targets", "### Same-style characters", "### Detection quality")
    more = ("### Throughput", "### Copy verification against registry size", "### Archive index")
    for heading in (*headings, *more, "### Cluster mode"):
        assert heading in md
    assert md in proc.stdout  # the table is printed for the README
