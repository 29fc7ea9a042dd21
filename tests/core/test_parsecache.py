"""The parse cache: a restart reads manifests seen before without parsing their YAML, and
gets exactly what parsing them would have given, whatever the cache file holds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import filesource, parsecache
from reconciler.core import sources, yamlio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEAD = "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"


def customer(name: str, extra: str = "") -> str:
    """A valid Customer document's text."""
    return f"{HEAD}metadata:\n  name: {name}\nspec:\n  displayName: {name.title()}\n{extra}"


#: files whose parse results (objects, refusals and their lines) must survive the cache
HOSTILE: dict[str, bytes] = {
    "fleet.yaml": "---\n".join(customer(f"t-{i}") for i in range(5)).encode(),
    "dup-key.yaml": (HEAD + "metadata:\n  name: a\n  name: b\n").encode(),
    "dup-kind.yaml": (HEAD + "kind: Preview\nmetadata:\n  name: c\n").encode(),
    "not-utf8.yaml": b"kind: Customer\nmetadata:\n  name: \xff\xfe\xfa\n",
    "broken.yaml": b"a: [1, 2\nb: }\n",
    "scalar.yaml": b"just a string\n",
    "timestamp.yaml": customer("stamp").replace(
        "metadata:\n", "metadata:\n  creationTimestamp: 2024-01-02T03:04:05Z\n").encode(),
    "binary.yaml": b"kind: Customer\ndata: !!binary aGVsbG8=\n",
    "aliases.yaml": (b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
                     b"c: &c [*b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c]\n"),
    "invalid-spec.yaml": customer("bad", "  workers: many\n").encode(),
    "int-keys.yaml": b"1: one\n2.5: two\n",
    "floats.yaml": b"kind: Customer\nvalues: [.nan, .inf, -.inf, 1.0, 1e3, 0x1f]\n",
    "empty.yaml": b"",
    "copy-a.yaml": customer("same").encode(),
    "copy-b.yaml": customer("same").encode(),  # same bytes twice: both refused by name
    "many.yaml": "---\n".join(["a: 1\n"] * 7).encode(),
}


def summary(parsed: sources.Parsed) -> dict[str, Any]:
    """Everything a pass sees of ``parsed``, in comparable form."""
    return {
        "objects": [(type(o).__name__, o.model_dump(mode="json")) for o in parsed.objects],
        "refusals": [(str(r), r.key) for r in parsed.refusals],
        "incomplete": parsed.incomplete,
        "origins": dict(parsed.origins),
    }


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """``files`` under ``root``, which is returned."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


LIMITS = sources.Limits(max_bytes=4096, max_documents=6)


def read(root: Path, cache_file: Path | None) -> dict[str, Any]:
    """The summary of reading ``root`` with a cache at ``cache_file`` (or none)."""
    cache = parsecache.ParseCache(cache_file) if cache_file is not None else None
    return summary(filesource.read_sources([root], LIMITS, cache))


def forbid_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any YAML parse fail loudly: what follows must come from the cache."""
    def refuse(text: object) -> object:
        raise AssertionError("parsed YAML although the cache knew the file")
    monkeypatch.setattr(yamlio, "load_documents", refuse)


def test_cold_and_warm_reads_equal_a_read_without_cache(tmp_path):
    """Objects, refusals (with file and line), origins and incompleteness are the same
    without the cache, when it is filled, and when it answers."""
    root = write_tree(tmp_path / "src", HOSTILE)
    shutil.copytree(EXAMPLES, root / "examples")
    cache_file = tmp_path / "cache"
    plain = read(root, None)
    assert read(root, cache_file) == plain
    assert cache_file.stat().st_size > 0
    assert read(root, cache_file) == plain
    refusals = " | ".join(r for r, _ in plain["refusals"])
    assert "dup-key.yaml: invalid YAML at line 5: duplicate key 'name'" in refusals
    assert "more than 6 documents" in refusals
    assert "duplicate name" in refusals and "copy-a.yaml, " in refusals


def test_a_warm_read_parses_no_yaml(tmp_path, monkeypatch):
    """Files seen before are not parsed again: their documents come from the cache."""
    files = {k: v for k, v in HOSTILE.items()
             if k not in ("timestamp.yaml", "binary.yaml", "aliases.yaml", "int-keys.yaml")}
    root = write_tree(tmp_path / "src", files)
    cache_file = tmp_path / "cache"
    before = read(root, cache_file)
    forbid_yaml(monkeypatch)
    assert read(root, cache_file) == before


def test_values_json_cannot_hold_are_parsed_again(tmp_path, monkeypatch):
    """Timestamps, binary data, non-string keys and alias bombs are never cached (JSON
    would give them back as something else, or enormous)."""
    for name in ("timestamp.yaml", "binary.yaml", "aliases.yaml", "int-keys.yaml"):
        root = write_tree(tmp_path / name, {name: HOSTILE[name]})
        cache_file = tmp_path / f"{name}.cache"
        read(root, cache_file)
        assert not cache_file.exists() or cache_file.read_bytes() == b"", name


def test_an_edited_file_is_read_as_it_is_now(tmp_path):
    """A file changed between runs (even to the same size) gives its new content."""
    root = write_tree(tmp_path / "src", {"a.yaml": customer("aaaa").encode()})
    cache_file = tmp_path / "cache"
    read(root, cache_file)
    (root / "a.yaml").write_bytes(customer("bbbb").encode())
    assert [o["metadata"]["name"] for _, o in read(root, cache_file)["objects"]] == ["bbbb"]


def test_the_same_bytes_in_two_places_keep_their_own_origins(tmp_path):
    """One cache entry serves two files; each refusal still names its own file."""
    bad = HOSTILE["dup-key.yaml"]
    root = write_tree(tmp_path / "src", {"one.yaml": bad, "two.yaml": bad})
    cache_file = tmp_path / "cache"
    read(root, cache_file)
    refusals = [r for r, _ in read(root, cache_file)["refusals"]]
    assert refusals == [f"{root / 'one.yaml'}: invalid YAML at line 5: duplicate key 'name' "
                        "(first at line 4)",
                        f"{root / 'two.yaml'}: invalid YAML at line 5: duplicate key 'name' "
                        "(first at line 4)"]


def test_a_file_over_the_limit_is_refused_with_or_without_cache(tmp_path):
    """Size limits apply before the cache is asked."""
    root = write_tree(tmp_path / "src", {"big.yaml": b"# " + b"x" * 5000 + b"\n"})
    cache_file = tmp_path / "cache"
    assert read(root, cache_file) == read(root, None)
    assert "over the limit" in read(root, cache_file)["refusals"][0][0]


@pytest.mark.parametrize("garbage", [
    b"\x00\xff" * 300,
    b"not a cache\n",
    b"0" * 64 + b" 0123456789abcdef {\"docs\":[]}\n",
    None,  # a real entry with one character of its documents changed: checksum fails
    "torn",  # a real entry cut off mid-line
    "shape",  # a line with a right checksum but not the right shape
])
def test_a_torn_or_foreign_cache_is_ignored_and_rebuilt(tmp_path, garbage):
    """Whatever the cache file holds, the read is right and the file is healed."""
    root = write_tree(tmp_path / "src", {k: HOSTILE[k] for k in ("fleet.yaml", "dup-key.yaml")})
    cache_file = tmp_path / "cache"
    expected = read(root, None)
    read(root, cache_file)
    good = cache_file.read_bytes()
    if garbage is None:
        data = good.replace(b"t-3", b"t-9")
    elif garbage == "torn":
        data = good[:len(good) // 3]
    elif garbage == "shape":
        key = filesource.parsecache.key_of((root / "fleet.yaml").read_bytes(), LIMITS)
        payload = '{"docs":{"a":1}}'
        data = f"{key} {parsecache._checksum(payload)} {payload}\n".encode()
    else:
        data = garbage
    cache_file.write_bytes(data)
    assert read(root, cache_file) == expected
    assert read(root, cache_file) == expected
    if isinstance(garbage, bytes) and garbage.startswith(b"\x00"):
        assert cache_file.read_bytes() == good


def test_an_unwritable_cache_location_still_reads(tmp_path):
    """A cache that cannot be read or written (a read-only repository) changes nothing."""
    root = write_tree(tmp_path / "src", {"fleet.yaml": HOSTILE["fleet.yaml"]})
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be\n")
    assert read(root, blocker / "cache") == read(root, None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_leaves_the_cache_as_it_was(tmp_path):
    """Readers of a read-only repository use the cache and write nothing."""
    root = write_tree(tmp_path / "src", {"fleet.yaml": HOSTILE["fleet.yaml"]})
    cache_dir = tmp_path / "git"
    cache_dir.mkdir()
    read(root, cache_dir / "cache")
    (root / "new.yaml").write_bytes(customer("newer").encode())
    cache_dir.chmod(0o555)
    try:
        assert read(root, cache_dir / "cache") == read(root, None)
    finally:
        cache_dir.chmod(0o755)


def test_the_cache_stays_the_size_of_the_files_last_read(tmp_path):
    """Entries of files no longer seen are dropped: many edits do not grow it for ever."""
    root = write_tree(tmp_path / "src", {})
    cache_file = tmp_path / "cache"
    sizes = []
    for round_ in range(30):
        for i in range(3):
            (root / f"f{i}.yaml").write_bytes(customer(f"r{round_}-f{i}", "  workers: 2\n"
                                                       * 0).encode())
        read(root, cache_file)
        sizes.append(cache_file.stat().st_size)
    one_round = sizes[0]
    assert max(sizes) <= 2 * one_round + 4096
    assert read(root, cache_file) == read(root, None)


def test_a_different_document_limit_is_a_different_entry(tmp_path):
    """The cached result depends on the document limit it was loaded under."""
    root = write_tree(tmp_path / "src", {"many.yaml": HOSTILE["many.yaml"]})
    cache_file = tmp_path / "cache"
    cache = parsecache.ParseCache(cache_file)
    refused = filesource.read_sources([root], LIMITS, cache)
    assert "more than 6 documents" in str(refused.refusals[0])
    roomy = sources.Limits(max_bytes=4096, max_documents=10)
    again = filesource.read_sources([root], roomy, parsecache.ParseCache(cache_file))
    assert len(again.refusals) == 7 and "more than" not in str(again.refusals[0])


def test_a_running_controller_adds_its_edits_and_a_restart_parses_nothing(tmp_path,
                                                                          monkeypatch):
    """Watch mode's first scan fills the cache; files re-read after edits are added (the
    file stays bounded over many edits), so a restart parses no YAML at all."""
    root = write_tree(tmp_path / "src", {"fleet.yaml": HOSTILE["fleet.yaml"],
                                         "other.yaml": customer("other").encode()})
    cache_file = tmp_path / "cache"
    watched = filesource.SourceCache([root], LIMITS, parsecache.ParseCache(cache_file))
    watched.rescan()
    one_scan = cache_file.stat().st_size
    for round_ in range(40):
        (root / "fleet.yaml").write_bytes(customer(f"edited-{round_}").encode())
        watched.update({str(root / "fleet.yaml")})
        assert cache_file.stat().st_size <= 2 * one_scan + 4096
    assert sorted(o.key.name for o in watched.parsed().objects) == ["edited-39", "other"]
    expected = read(root, None)
    forbid_yaml(monkeypatch)
    restarted = filesource.SourceCache([root], LIMITS, parsecache.ParseCache(cache_file))
    restarted.rescan()
    assert summary(restarted.parsed()) == expected


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_something_else_at_the_cache_path_is_not_followed(tmp_path, kind):
    """A FIFO (which would block a read), a symlink (which would send writes elsewhere) or
    a directory where the cache file belongs: the read is right and nothing hangs."""
    root = write_tree(tmp_path / "src", {"fleet.yaml": HOSTILE["fleet.yaml"]})
    cache_file = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"keep me\n")
    if kind == "fifo":
        os.mkfifo(cache_file)
    elif kind == "symlink":
        cache_file.symlink_to(elsewhere)
    else:
        cache_file.mkdir()
    assert read(root, cache_file) == read(root, None)
    assert elsewhere.read_bytes() == b"keep me\n"
    if kind != "directory":  # replaced by a real cache file, which then answers
        assert cache_file.is_file() and not cache_file.is_symlink()
        assert read(root, cache_file) == read(root, None)


def test_a_rewrite_killed_midway_leaves_nothing_for_long(tmp_path):
    """A temporary file a killed rewrite left behind is deleted by a later rewrite; a
    fresh one (another process's, still writing) is left alone."""
    root = write_tree(tmp_path / "src", {"fleet.yaml": HOSTILE["fleet.yaml"]})
    cache_file = tmp_path / "cache"
    old = tmp_path / f".{parsecache.FILE_NAME}.killed"
    young = tmp_path / f".{parsecache.FILE_NAME}.writing"
    for temp in (old, young):
        temp.write_bytes(b"half a cache")
    os.utime(old, (1, 1))
    cache_file.write_bytes(b"garbage, so that the next save rewrites\n")
    assert read(root, cache_file) == read(root, None)
    assert not old.exists() and young.exists()
