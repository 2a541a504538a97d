"""Tests for the inputs and outputs around the stages: seeds, sources (finding inputs), sinks (naming, writing)."""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.errors import ModomoError, UsageError
from pipeline.frames import Item
from pipeline.inputs.seeds import derive_seed
from pipeline.inputs.sources import collect_inputs
from pipeline.outputs.sinks import LocalSink, OutputError, output_stems, temp_owner

# --------------------------------------------------------------------------- seeds

KEYS = [f"floor{f}/room-{i:02d}.jpg" for f in range(3) for i in range(20)] + ["salon d'\u00e9t\u00e9.jpg", "a b/c.png"]


def test_derive_seed_is_deterministic():
    assert derive_seed(42, "a/room.jpg") == derive_seed(42, "a/room.jpg")
    # Known values pin the derivation: a change would silently change every user's results.
    assert derive_seed(0, "room.jpg") == 2237038750
    assert derive_seed(42, "a/room.jpg") == 3208022848


def test_derive_seed_depends_on_base_and_key():
    seeds = {derive_seed(base, key) for base in (0, 1, 42, 2**31) for key in KEYS}
    assert len(seeds) == 4 * len(KEYS)
    assert derive_seed(1, "a") != derive_seed(2, "a")
    assert derive_seed(1, "a") != derive_seed(1, "b")
    # The separator keeps (base, key) pairs apart that a plain concatenation would merge.
    assert derive_seed(1, "2a") != derive_seed(12, "a")


def test_derive_seed_is_independent_of_order():
    in_order = {key: derive_seed(7, key) for key in KEYS}
    shuffled = list(KEYS)
    random.Random(3).shuffle(shuffled)
    assert shuffled != KEYS
    in_shuffled_order = {key: derive_seed(7, key) for key in shuffled}
    assert in_shuffled_order == in_order
    # Seeds for a subset (one shard, one batch) equal those of the full run.
    assert {key: derive_seed(7, key) for key in shuffled[::5]} == {k: in_order[k] for k in shuffled[::5]}


def test_derive_seed_is_a_32_bit_int():
    seeds = [derive_seed(base, key) for base in (0, 5, 2**40) for key in KEYS]
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert max(seeds) > 2**31  # uses the whole range, not only 31 bits


# --------------------------------------------------------------------------- sources


def png(path: Path, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), colour).save(path)
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """An input folder with images at several depths, hidden files and folders, and non-images."""
    root = tmp_path / "in"
    png(root / "b.png")
    png(root / "a" / "room.jpg")
    png(root / "a" / "room.png")
    png(root / "a" / "deeper" / "x.webp")
    png(root / "sub dir" / "salon d'\u00e9t\u00e9.jpg")
    png(root / "Z.PNG")
    png(root / ".hidden.jpg")
    png(root / ".secret" / "inside.png")
    png(root / "a" / ".cache" / "thumb.jpg")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "README").write_text("no suffix")
    return root


EXPECTED_KEYS = ["Z.PNG", "a/deeper/x.webp", "a/room.jpg", "a/room.png", "b.png", "sub dir/salon d'\u00e9t\u00e9.jpg"]


def test_collect_folder_is_recursive_sorted_and_skips_hidden_and_non_images(tree):
    items = collect_inputs([tree])
    keys = [item.key for item in items]
    assert keys == EXPECTED_KEYS
    assert keys == sorted(keys)
    for item in items:
        assert item.root == tree
        assert item.path == tree / item.key
        assert item.path.is_file()


def test_keys_are_posix_and_relative_to_the_folder_given(tree):
    items = collect_inputs([str(tree / "a")])
    assert [item.key for item in items] == ["deeper/x.webp", "room.jpg", "room.png"]
    for item in items:
        assert "\\" not in item.key and not PurePosixPath(item.key).is_absolute()
        assert item.root == tree / "a"


def test_explicit_file_is_included_whatever_its_suffix(tree):
    notes = tree / "a" / "notes.txt"
    hidden = tree / ".hidden.jpg"
    items = collect_inputs([notes, hidden, tree / "b.png"])
    assert [(i.key, i.path, i.root) for i in items] == [
        ("notes.txt", notes, notes.parent),
        (".hidden.jpg", hidden, tree),
        ("b.png", tree / "b.png", tree),
    ]


def test_inputs_keep_the_order_given(tree):
    items = collect_inputs([tree / "b.png", tree / "a"])
    assert [i.key for i in items] == ["b.png", "deeper/x.webp", "room.jpg", "room.png"]


def test_symlink_loop_terminates_and_lists_each_image_once(tree):
    os.symlink(tree / "a", tree / "a" / "loop")
    items = collect_inputs([tree])
    keys = [item.key for item in items]
    assert keys == EXPECTED_KEYS
    assert len({item.path.resolve() for item in items}) == len(items)


def test_symlinked_folder_elsewhere_is_followed(tmp_path, tree):
    outside = tmp_path / "outside"
    png(outside / "far.png")
    os.symlink(outside, tree / "linked")
    keys = [item.key for item in collect_inputs([tree])]
    assert "linked/far.png" in keys
    assert keys == sorted(EXPECTED_KEYS + ["linked/far.png"])


def test_missing_path_raises_usage_error_naming_it(tmp_path, tree):
    missing = tmp_path / "no such place"
    with pytest.raises(UsageError) as info:
        collect_inputs([tree, missing])
    assert str(missing) in str(info.value)
    assert info.value.exit_code == 2


def test_names_with_spaces_and_non_ascii_are_found(tree):
    items = collect_inputs([tree / "sub dir"])
    assert [item.key for item in items] == ["salon d'\u00e9t\u00e9.jpg"]
    assert items[0].path.read_bytes()[:3] == b"\xff\xd8\xff"  # the JPEG itself


def test_empty_folder_gives_no_items(tmp_path):
    (tmp_path / "empty").mkdir()
    assert collect_inputs([tmp_path / "empty"]) == []


# --------------------------------------------------------------------------- sinks: names


def item(key: str, root: str = "/data/in") -> Item:
    return Item(key, Path(root) / key, Path(root))


def test_plain_unique_input_gets_dir_name_style():
    a, b = item("living/room.jpg"), item("kitchen.png")
    assert output_stems([a, b], "boho") == {a: "living/room.boho", b: "kitchen.boho"}


def test_same_name_in_different_folders_gets_different_stems():
    a, b = item("a/room.jpg"), item("b/room.jpg")
    stems = output_stems([a, b], "boho")
    assert stems == {a: "a/room.boho", b: "b/room.boho"}


def test_same_stem_different_extension_keeps_extensions():
    jpg, png_ = item("room.jpg"), item("room.png")
    other = item("other.jpg")
    stems = output_stems([jpg, png_, other], "boho")
    assert stems == {jpg: "room.jpg.boho", png_: "room.png.boho", other: "other.boho"}


def test_two_roots_with_the_same_file_get_different_stems():
    first, second = item("room.jpg", "/data/photos"), item("room.jpg", "/data/more")
    stems = output_stems([first, second], "boho")
    assert stems[first] != stems[second]
    assert stems == {first: "photos/room.boho", second: "more/room.boho"}  # the root's name is enough


def test_two_roots_keep_the_extension_only_when_the_root_is_not_enough():
    a, b, c = item("room.jpg", "/data/photos"), item("room.png", "/data/photos"), item("room.jpg", "/data/more")
    stems = output_stems([a, b, c], "boho")
    assert stems == {a: "photos/room.boho", b: "room.png.boho", c: "more/room.boho"}
    d = item("room.png", "/data/more")
    stems = output_stems([a, b, c, d], "boho")
    assert stems == {
        a: "photos/room.jpg.boho",
        b: "photos/room.png.boho",
        c: "more/room.jpg.boho",
        d: "more/room.png.boho",
    }


def test_name_template_fields_at_the_top_of_a_folder_and_across_roots():
    """An empty {parent} leaves its folder level out (a photo at the top of a flat folder is named, not refused);
    {root} is the input folder's own name, which tells two folders' photos apart."""
    from pipeline.outputs.names import render

    top, nested = item("x.jpg", "/data/photos"), item("sub/x.jpg", "/data/photos")
    assert render("{parent}/{stem}", top, "boho", "kitchen", 1) == "x"
    assert render("{parent}/{stem}", nested, "boho", "kitchen", 1) == "sub/x"
    assert render("{root}/{parent}/{stem}.{style}", top, "boho", "kitchen", 1) == "photos/x.boho"
    assert render("{root}/{parent}/{stem}.{style}", nested, "boho", "kitchen", 1) == "photos/sub/x.boho"
    r2 = Item("x.jpg", None, None, uri="s3://bucket/shoots/june/x.jpg")
    assert render("{root}-{stem}", r2, "boho", "kitchen", 1) == "june-x"


def test_two_roots_with_the_same_name_still_differ():
    first, second = item("room.jpg", "/a/photos"), item("room.jpg", "/b/photos")
    stems = output_stems([first, second], "boho")
    assert len(set(stems.values())) == 2


DIRS = ["", "a", "b", "a/b", "in", "photos"]
NAMES = ["room", "Room", "room.jpg", "x", "photos"]
EXTS = [".jpg", ".png", ".JPG", ".webp", ""]
ROOTS = ["/data/in", "/data/photos", "/mnt/in", "/", "/data/in/a"]


@st.composite
def items_lists(draw) -> list[Item]:
    count = draw(st.integers(min_value=1, max_value=12))
    out = []
    for _ in range(count):
        folder, name, ext = draw(st.sampled_from(DIRS)), draw(st.sampled_from(NAMES)), draw(st.sampled_from(EXTS))
        key = f"{folder}/{name}{ext}" if folder else f"{name}{ext}"
        out.append(item(key, draw(st.sampled_from(ROOTS))))
    return out


@settings(max_examples=300, deadline=None)
@given(items=items_lists(), style=st.sampled_from(["boho", "modern"]))
def test_output_stems_never_collide(items, style):
    stems = output_stems(items, style)
    assert set(stems) == set(items)
    assert len(set(stems.values())) == len(stems), stems
    for stem in stems.values():
        path = PurePosixPath(stem)
        assert not path.is_absolute() and ".." not in path.parts
        assert f".{style}" in path.name


def test_output_stems_are_safe_sink_paths(tmp_path):
    sink = LocalSink(tmp_path)
    items = [item("room.jpg", "/"), item("a/room.jpg", "/x"), item("room.png", "/")]
    for stem in output_stems(items, "boho").values():
        assert sink.path(stem + ".png").is_relative_to(tmp_path.resolve())


# --------------------------------------------------------------------------- sinks: writing


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def visible(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name != ".modomo")


def test_write_lands_the_bytes_and_leaves_no_temp_file(tmp_path):
    sink = LocalSink(tmp_path / "out")
    written = sink.write("a/b/room.boho.png", b"\x89PNG data")
    target = tmp_path / "out" / "a" / "b" / "room.boho.png"
    assert written == str(target.resolve())
    assert target.read_bytes() == b"\x89PNG data"
    assert leftovers(target.parent) == [] and leftovers(tmp_path / "out" / ".modomo" / "tmp") == []
    assert os.listdir(target.parent) == ["room.boho.png"]


def test_overwrite_keeps_only_the_new_content(tmp_path):
    sink = LocalSink(tmp_path)
    sink.write("room.png", b"old content, longer than the new one")
    sink.write("room.png", b"new")
    assert (tmp_path / "room.png").read_bytes() == b"new"
    assert visible(tmp_path) == ["room.png"] and leftovers(tmp_path / ".modomo" / "tmp") == []


@pytest.mark.parametrize(
    ("error", "raised"),
    [(OSError(28, "No space left on device"), OutputError), (OSError(5, "Input/output error"), OSError)],
)
def test_failed_write_leaves_nothing_and_reraises(tmp_path, monkeypatch, error, raised):
    """A full disk is fatal for the run (OutputError); other errors stay the image's own (OSError)."""
    sink = LocalSink(tmp_path)

    def broken_replace(src, dst):
        raise error

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(raised, match=error.strerror):
        sink.write("sub/room.png", b"data")
    assert not (tmp_path / "sub" / "room.png").exists()
    assert os.listdir(tmp_path / "sub") == [] and leftovers(tmp_path / ".modomo" / "tmp") == []


def test_failed_overwrite_keeps_the_old_file_whole(tmp_path, monkeypatch):
    sink = LocalSink(tmp_path)
    sink.write("room.png", b"old")
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        sink.write("room.png", b"new")
    assert (tmp_path / "room.png").read_bytes() == b"old"
    assert visible(tmp_path) == ["room.png"] and leftovers(tmp_path / ".modomo" / "tmp") == []


def test_interrupted_write_leaves_no_temp_file(tmp_path, monkeypatch):
    sink = LocalSink(tmp_path)

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sink.write("room.png", b"data")
    assert visible(tmp_path) == [] and leftovers(tmp_path / ".modomo" / "tmp") == []


@pytest.mark.parametrize("relative", ["../x", "a/../../x", "/etc/passwd"])
def test_path_escaping_the_root_is_refused(tmp_path, relative):
    sink = LocalSink(tmp_path / "out")
    with pytest.raises(ModomoError, match="escapes"):
        sink.path(relative)
    with pytest.raises(ModomoError, match="escapes"):
        sink.write(relative, b"x")
    assert not (tmp_path / "x").exists()


def test_path_inside_the_root_is_allowed(tmp_path):
    sink = LocalSink(tmp_path)
    assert sink.path("a/../b.png") == (tmp_path / "b.png").resolve()


def test_prepare_creates_the_folder_and_leaves_it_clean(tmp_path):
    sink = LocalSink(tmp_path / "new" / "out")
    sink.prepare()
    assert (tmp_path / "new" / "out").is_dir()
    assert visible(tmp_path / "new" / "out") == [] and os.listdir(tmp_path / "new" / "out" / ".modomo" / "tmp") == []


def test_prepare_on_an_unwritable_location_names_it(tmp_path):
    (tmp_path / "file.txt").write_text("a regular file")
    bad = tmp_path / "file.txt" / "out"
    with pytest.raises(ModomoError) as info:
        LocalSink(bad).prepare()
    assert str(bad) in str(info.value)
    assert "not writable" in str(info.value)
    assert info.value.exit_code == 1


# --------------------------------------------------------------------------- sinks: temporary files


def temp_name(target: str, host: str, pid: int) -> str:
    return f".{target}~{host}~{pid}~x1y2.tmp"


def test_temporary_names_carry_their_writer(tmp_path, monkeypatch):
    sink = LocalSink(tmp_path)
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    sink.write("a/room.png", b"data")
    assert seen[0].parent == tmp_path / ".modomo" / "tmp"
    assert temp_owner(seen[0].name) == (socket.gethostname(), os.getpid())


def test_start_sweeps_only_temps_no_live_run_owns(tmp_path):
    """Another run's in-flight write survives this run's start; a dead or day-old writer's does not."""
    import subprocess
    import sys

    sink = LocalSink(tmp_path)
    sink.prepare()
    temps = tmp_path / ".modomo" / "tmp"
    host = socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        files = {
            "live": temps / temp_name("a.png", host, live.pid),
            "dead": temps / temp_name("b.png", host, dead.pid),
            "other host, fresh": temps / temp_name("c.png", "render-07", dead.pid),
            "other host, old": temps / temp_name("d.png", "render-07", live.pid),
        }
        for path in files.values():
            path.write_bytes(b"partial")
        old = time.time() - 2 * 24 * 3600
        os.utime(files["other host, old"], (old, old))
        LocalSink(tmp_path).prepare()  # another run starting into the same output
        assert {name for name, path in files.items() if path.exists()} == {"live", "other host, fresh"}
    finally:
        live.kill()
        live.wait()


def test_start_does_not_walk_the_output(tmp_path, monkeypatch):
    """Only `.modomo/tmp` is listed at the start, however many results the output holds."""
    for i in range(50):
        (tmp_path / f"d{i}").mkdir()
    listed = []
    real_scandir = os.scandir

    def scandir(path="."):
        listed.append(Path(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(Path, "rglob", lambda *a, **k: (_ for _ in ()).throw(AssertionError("walked")))
    LocalSink(tmp_path).prepare()
    assert listed == [tmp_path / ".modomo" / "tmp"]
