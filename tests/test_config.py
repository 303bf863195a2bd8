"""Config: TOML file, defaults, env overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from charwatch.config import ConfigError, dump_toml, load_config


def test_defaults_without_file() -> None:
    cfg = load_config(None, environ={})
    assert cfg.storage.database_url == "sqlite:///data/charwatch.db"
    assert cfg.platforms.tiktok.base_url == "https://www.tiktok.com"
    assert cfg.platforms.youtube.base_url == "https://www.youtube.com"
    assert cfg.platforms.instagram.base_url == "https://www.instagram.com"
    assert cfg.embed.model == "effnet-lite0"


def test_file_and_env_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[storage]\nurl = "sqlite:///x.db"\ndata_dir = "d"\n'
        '[platforms.instagram]\ncookies = { sessionid = "abc" }\n'
        '[embed]\nmodel = "clip:ViT-B-32:laion2b_s34b_b79k"\n'
        '[[watch]]\nplatform = "tiktok"\nhashtag = "naruto"\n',
        encoding="utf-8",
    )
    env = {
        "CHARWATCH_CONFIG": str(f),
        "CHARWATCH_STORAGE__URL": "postgresql+psycopg://u@h/db",
        "CHARWATCH_PLATFORMS__TIKTOK__BASE_URL": "http://127.0.0.1:9",
        "CHARWATCH_PROCESS__MAX_FRAMES": "8",
        "CHARWATCH_CRAWL__AUTOTHROTTLE": "false",
    }
    cfg = load_config(None, environ=env)
    assert cfg.storage.url == "postgresql+psycopg://u@h/db"
    assert cfg.storage.data_dir == "d"
    assert cfg.platforms.tiktok.base_url == "http://127.0.0.1:9"
    # a platform table from the file keeps the platform's other defaults
    assert cfg.platforms.instagram.cookies == {"sessionid": "abc"}
    assert cfg.platforms.instagram.base_url == "https://www.instagram.com"
    assert cfg.process.max_frames == 8
    assert cfg.crawl.autothrottle is False
    assert cfg.embed.model.startswith("clip:")
    assert cfg.watch[0].hashtag == "naruto"


def test_round_trip_dump(tmp_path: Path) -> None:
    cfg = load_config(None, environ={"CHARWATCH_PROCESS__KEEP_MEDIA": "all"})
    f = tmp_path / "out.toml"
    f.write_text(dump_toml(cfg), encoding="utf-8")
    again = load_config(f, environ={})
    assert again.process.keep_media == "all"
    assert again.platforms == cfg.platforms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[storage]\nnope = 1\n", "unknown config key storage.nope"),
        ("[process]\nmax_frames = 'many'\n", "process.max_frames"),
        ("[[watch]]\nplatform = 'tiktok'\n", "exactly one of"),
        ("[[watch]]\nplatform = 'myspace'\nhashtag = 'x'\n", "unknown platform"),
        ("[storage\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(f, environ={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/charwatch.toml", environ={})


def test_every_described_platform_has_its_config_and_spider() -> None:
    """One description per platform: config fields, listing kinds and spiders follow it."""
    import dataclasses

    from charwatch.config import PlatformsConfig
    from charwatch.platforms import DESCRIPTIONS
    from crawler.listing import SUPPORTED
    from crawler.run import spider_class

    names = [p.name for p in DESCRIPTIONS]
    assert [f.name for f in dataclasses.fields(PlatformsConfig)] == names
    assert list(SUPPORTED) == names
    for desc in DESCRIPTIONS:
        assert spider_class(desc.name).platform == desc.name
        assert PlatformsConfig().get(desc.name).base_url == desc.base_url
