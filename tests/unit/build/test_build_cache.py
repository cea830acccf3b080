"""The build cache: pruning entries and the layers only they kept, the lock, ``builder`` CLI.

Cache entries are fabricated as the builder writes them (``<key>.json``: a step's image
config) over a real image store with real layers; no containers are involved.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trio

from pycompose.cli.commands.image import human_size
from pycompose.cli.main import main
from pycompose.runtime.build.cache import (
    build_lock,
    build_lock_async,
    cache_dir,
    cache_usage,
    mounts_dir,
    prune_build_cache,
    touch_entry,
)
from pycompose.runtime.build.errors import BuildCacheBusyError, BuildError
from pycompose.runtime.images import ImageStore, Layer
from pycompose.runtime.images.config import ImageConfig, empty_config

HOUR = 3600.0


def _key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class Cache:
    """A state root with an image store, layers, and helpers to write cache entries."""

    root: Path
    store: ImageStore
    work: Path

    def layer(self, name: str, size: int) -> Layer:
        src = self.work / f"src-{name}"
        src.mkdir()
        (src / name).write_bytes(name.encode()[:1] * size)
        return self.store.add_layer_from_dir(src)

    def entry(self, name: str, config: ImageConfig, *, age: float = 0.0) -> Path:
        directory = cache_dir(self.root)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{_key(name)}.json"
        path.write_bytes(config.to_json())
        if age:
            when = time.time() - age
            os.utime(path, (when, when))
        return path

    def has(self, layer: Layer) -> bool:
        return self.store.has_layer(layer.diff_id)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    root = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    return Cache(root=root, store=ImageStore(root / "images"), work=work)


def _step(parent: ImageConfig, layer: Layer | None = None, *, env: str = "") -> ImageConfig:
    if layer is not None:
        return parent.derive(diff_ids=[layer.diff_id], created_by="RUN x")
    cc = parent.config
    return parent.derive(config=replace(cc, env=(*cc.env, env)), created_by=f"ENV {env}")


@dataclass
class Scene:
    image_layers: tuple[Layer, Layer]
    stage_layer: Layer          # an intermediate stage's layer: cache only
    superseded_layer: Layer     # a step a changed Dockerfile replaced: cache only
    kept: tuple[Path, ...]      # entries that are part of the image
    dangling: tuple[Path, ...]
    dead: tuple[Path, ...]
    temp: Path


def _scene(cache: Cache) -> Scene:
    base = empty_config()
    l1, l2 = cache.layer("a", 1000), cache.layer("b", 2000)
    l3, l4 = cache.layer("c", 30_000), cache.layer("d", 400_000)
    s1 = _step(base, l1)
    s2 = _step(s1, l2)
    s2env = _step(s2, env="A=1")
    cache.store.create_image(s2env, "app:1")
    stage = _step(base, l3)
    kept = (cache.entry("s1", s1), cache.entry("s2", s2), cache.entry("s2env", s2env))
    dangling = (cache.entry("stage", stage), cache.entry("stage-env", _step(stage, env="B=2")),
                cache.entry("superseded", _step(s1, l4)))
    gone = _step(s1).derive(diff_ids=["sha256:" + "0" * 64])
    dead = (cache.entry("gone", gone),
            cache_dir(cache.root) / f"{_key('garbage')}.json")
    dead[1].write_bytes(b"{not json")
    temp = cache_dir(cache.root) / f".{_key('crashed')}.1a2b3c4d"
    temp.write_bytes(b'{"half')
    return Scene((l1, l2), l3, l4, kept, dangling, dead, temp)


def _sizes(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths)


def test_default_prune_removes_dangling_and_dead_and_only_cache_layers(cache: Cache) -> None:
    scene = _scene(cache)
    orphan = cache.layer("orphan", 10)  # in no image and no entry: image prune's business
    files = _sizes(*scene.dangling, *scene.dead, scene.temp)

    result = prune_build_cache(cache.store, cache.root, all=False)

    assert all(p.exists() for p in scene.kept)
    assert not any(p.exists() for p in (*scene.dangling, *scene.dead, scene.temp))
    assert result.removed == tuple(sorted(
        p.name[:-5] for p in (*scene.dangling, *scene.dead)))
    assert result.dead == 2
    assert result.temp_files == 1
    assert all(cache.has(layer) for layer in scene.image_layers)
    assert not cache.has(scene.stage_layer)
    assert not cache.has(scene.superseded_layer)
    assert cache.has(orphan)
    assert set(result.layers) == {scene.stage_layer.diff_id, scene.superseded_layer.diff_id}
    assert result.reclaimed == files + 30_000 + 400_000
    image = cache.store.get("app:1")
    assert all(d.is_dir() for d in image.layer_dirs)

    again = prune_build_cache(cache.store, cache.root, all=False)
    assert again.removed == ()
    assert again.layers == ()
    assert again.reclaimed == 0


def test_all_removes_every_entry_and_cache_mounts_but_never_an_image_layer(
        cache: Cache) -> None:
    scene = _scene(cache)
    mount = mounts_dir(cache.root) / "apt"
    (mount / "archives").mkdir(parents=True)
    (mount / "archives" / "pkg.deb").write_bytes(b"x" * 5000)
    os.symlink("/etc/passwd", mount / "link")  # not followed, not counted
    (mount / "ro").mkdir(mode=0o500)  # a build may leave read-only directories
    mount.with_name("apt.lock").touch()  # sharing=locked|private: goes with its directory
    files = _sizes(*scene.kept, *scene.dangling, *scene.dead, scene.temp)

    default = prune_build_cache(cache.store, cache.root, all=False)
    assert mount.is_dir()
    assert default.mounts == ()

    result = prune_build_cache(cache.store, cache.root, all=True)
    assert sorted(os.listdir(cache_dir(cache.root))) == [".lock"]
    assert all(cache.has(layer) for layer in scene.image_layers)
    assert result.layers == ()  # the only cache layers left were the image's
    assert result.mounts == ("apt",)
    assert not mount.exists()
    assert os.listdir(mounts_dir(cache.root)) == []
    assert default.reclaimed + result.reclaimed == files + 30_000 + 400_000 + 5000
    assert Path("/etc/passwd").exists()


def test_a_layer_an_entry_that_stays_needs_is_kept(cache: Cache) -> None:
    base = empty_config()
    shared, top = cache.layer("s", 700), cache.layer("t", 800)
    old = cache.entry("old", _step(base, shared), age=2 * HOUR)
    recent = cache.entry("recent", _step(_step(base, shared), top))

    result = prune_build_cache(cache.store, cache.root, all=False, keep_duration=HOUR)

    assert not old.exists()
    assert recent.exists()
    assert cache.has(shared)
    assert cache.has(top)
    assert result.layers == ()
    assert result.reclaimed == len(_step(base, shared).to_json())


def test_keep_duration_spares_recent_entries_but_never_dead_ones(cache: Cache) -> None:
    base = empty_config()
    young, aged = cache.layer("y", 10), cache.layer("o", 20)
    young_entry = cache.entry("young", _step(base, young), age=HOUR / 2)
    aged_entry = cache.entry("aged", _step(base, aged), age=3 * HOUR)
    dead = cache.entry("dead", base.derive(diff_ids=["sha256:" + "1" * 64]))  # new, yet dead

    result = prune_build_cache(cache.store, cache.root, all=True, keep_duration=HOUR)

    assert young_entry.exists()
    assert cache.has(young)
    assert not aged_entry.exists()
    assert not cache.has(aged)
    assert not dead.exists()
    assert result.dead == 1
    assert result.layers == (aged.diff_id,)


def test_touch_entry_marks_an_entry_used(cache: Cache) -> None:
    layer = cache.layer("u", 10)
    entry = cache.entry("used", _step(empty_config(), layer), age=5 * HOUR)
    touch_entry(entry)
    touch_entry(cache_dir(cache.root) / "missing.json")  # ignored

    prune_build_cache(cache.store, cache.root, all=True, keep_duration=HOUR)

    assert entry.exists()
    assert cache.has(layer)


def test_negative_keep_duration_is_refused(cache: Cache) -> None:
    with pytest.raises(BuildError, match="negative"):
        prune_build_cache(cache.store, cache.root, all=False, keep_duration=-1)


def test_prune_waits_for_a_running_build_then_gives_up(cache: Cache) -> None:
    layer = cache.layer("b", 10)
    entry = cache.entry("stage", _step(empty_config(), layer))
    with build_lock(cache.root, exclusive=False), build_lock(cache.root, exclusive=False):
        with pytest.raises(BuildCacheBusyError, match="a build is running"):
            prune_build_cache(cache.store, cache.root, all=True, timeout=0.05)
        assert entry.exists()
        assert cache.has(layer)
    result = prune_build_cache(cache.store, cache.root, all=True, timeout=0.05)
    assert not entry.exists()
    assert result.layers == (layer.diff_id,)


async def test_a_build_waits_while_prune_holds_the_lock(cache: Cache) -> None:
    acquired = []

    async def build() -> None:
        async with build_lock_async(cache.root):
            acquired.append(True)

    with build_lock(cache.root, exclusive=True):
        with trio.move_on_after(0.2) as scope:
            await build()
        assert scope.cancelled_caught
        assert acquired == []
    await build()
    assert acquired == [True]


def test_remove_unused_layers_spares_image_layers_and_non_candidates(cache: Cache) -> None:
    used, unused, other = cache.layer("u", 100), cache.layer("n", 200), cache.layer("o", 300)
    cache.store.create_image(_step(empty_config(), used), "img:1")

    removed = cache.store.remove_unused_layers(
        [used.diff_id, unused.diff_id, "sha256:" + "2" * 64, "bogus"])

    assert removed == {unused.diff_id: unused.size}
    assert unused.size == 200
    assert cache.has(used)
    assert cache.has(other)
    assert not cache.has(unused)


def test_cache_usage(cache: Cache) -> None:
    scene = _scene(cache)
    usage = cache_usage(cache.store, cache.root)
    by_path = {e.path: e for e in usage.entries}
    assert len(usage.entries) == 8
    assert {by_path[p].key for p in (*scene.dangling, *scene.dead)} == usage.dangling
    superseded = by_path[scene.dangling[2]]
    assert usage.sizes[superseded.key] == 400_000
    assert usage.sizes[by_path[scene.kept[1]].key] == 0  # its layer is the image's
    files = _sizes(*scene.kept, *scene.dangling, *scene.dead, scene.temp)
    assert usage.reclaimable == files + 30_000 + 400_000
    assert usage.total == usage.reclaimable + 1000 + 2000


# --- the CLI ---------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str,
         *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["builder", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prune_asks_then_prunes(state_root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cli-work"
    work.mkdir()
    cache = Cache(root=state_root, store=ImageStore(state_root / "images"), work=work)
    scene = _scene(cache)
    expected = _sizes(*scene.dangling, *scene.dead, scene.temp) + 30_000 + 400_000

    for answer in ("n\n", ""):  # no, and end of input: nothing removed, exit 0
        code, out, _ = _cli(capsys, monkeypatch, answer, "prune")
        assert code == 0
        assert out.startswith("WARNING! This will remove all dangling build cache. "
                              "Are you sure you want to continue? [y/N] ")
        assert "reclaimed" not in out
        assert all(p.exists() for p in scene.dangling)
        assert cache.has(scene.stage_layer)

    code, out, _ = _cli(capsys, monkeypatch, "", "du")
    assert code == 0
    assert "Entries:\t8" in out
    assert _key("superseded")[:12] in out

    code, out, _ = _cli(capsys, monkeypatch, "y\n", "prune")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("[y/N] Deleted build cache objects:")
    assert lines[-2] == ""
    assert lines[-1] == f"Total reclaimed space: {human_size(expected)}"
    assert _key("stage")[:12] in out
    assert not cache.has(scene.stage_layer)
    assert all(cache.has(layer) for layer in scene.image_layers)

    code, out, _ = _cli(capsys, monkeypatch, "", "prune", "-a", "-f", "--keep-duration", "1h")
    assert code == 0
    assert out == "Total reclaimed space: 0B\n"
    assert all(p.exists() for p in scene.kept)

    kept = _sizes(*scene.kept)
    code, out, _ = _cli(capsys, monkeypatch, "", "prune", "--all", "--force")
    assert code == 0
    assert out.endswith(f"\n\nTotal reclaimed space: {human_size(kept)}\n")
    assert not any(p.exists() for p in scene.kept)
    assert all(cache.has(layer) for layer in scene.image_layers)


def test_cli_rejects_a_bad_duration(state_root: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _cli(capsys, monkeypatch, "y\n", "prune", "--filter", "until=soon")
    assert code != 0
    assert out == ""  # refused before the question
    assert 'invalid duration "soon"' in err
    assert not (state_root / "build-cache").exists()


async def test_a_build_waits_for_a_prune_and_a_hit_marks_its_entry_used(
        tmp_path: Path) -> None:
    """The builder holds the build lock shared for a whole build (a prune, exclusive, keeps
    it out), and a cache hit touches the entry (what --keep-duration measures)."""
    from pycompose.runtime.build import Builder, BuildOptions

    root = tmp_path / "state"
    store = ImageStore(root / "images")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    options = BuildOptions(context=ctx, tags=("cached:1",),
                           dockerfile_inline="FROM scratch\nCOPY a.txt /a.txt\n")
    builder = Builder(store, root)
    with build_lock(root, exclusive=True):  # a prune is running
        with trio.move_on_after(0.5) as waited:
            await builder.build(options)
        assert waited.cancelled_caught  # the build waited for it
    await builder.build(options)
    entries = [p for p in (root / "build-cache").glob("*.json")]
    assert len(entries) == 1
    old = time.time() - 3600
    os.utime(entries[0], (old, old))
    lines: list[str] = []
    await Builder(store, root, log=lines.append).build(options)
    assert any(line.endswith("CACHED") for line in lines)
    assert entries[0].stat().st_mtime > old + 3000
