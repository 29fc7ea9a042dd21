"""Canonical YAML and deterministic rendering: the fast dumper writes PyYAML's exact bytes,
what it writes reads back to the input, and the same resource always renders the same bytes.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core import plan, yamlio
from reconciler.core.models import Customer, Preview
from reconciler.core.render import common, customers, pool, previews
from reconciler.core.settings import ExternalSecrets, Settings

AWKWARD = [
    "yes", "no", "on", "off", "y", "n", "Yes", "NO", "true", "False", "null", "Null", "~",
    "1e3", "1E3", "0x10", "0o17", "017", "1_000", ".inf", "-.inf", ".nan", "-1", "+1", "1.0",
    "12:30", "2024-01-01", "-", "--", "---", "...", ":", ": ", "a: b", "a:b", "#", "a #b", "a#b",
    "- x", "? x", "!tag", "&anchor", "*alias", "%directive", "@at", "`tick", "|", ">", "=", "<<",
    "'single'", '"double"', "[list]", "{map}", ",", " leading", "trailing ", "  ", "\t", "",
    "a\nb", "\n", "ends with newline\n", "ünïcødé", "日本語", "emoji 🎉", "\x00", "\x07", "\ufeff",
    "a\rb", "\x85", "a\u2028b", "\u2029", "é" * 70, "x" * 1023, "x" * 1025, "word " * 900,
]
texts = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(max_size=20),
    # long strings, around the fast dumper's limits (keys of 100 bytes, values of 1024 characters)
    st.tuples(st.text(min_size=1, max_size=8), st.integers(10, 150)).map(lambda t: t[0] * t[1]),
)


def documents(keys: st.SearchStrategy[str], strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Nested mappings and lists of str, int, bool and None."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), strings)
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=20,
    )
    return st.dictionaries(keys, values, max_size=5)


DOCUMENTS = documents(texts, texts)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(DOCUMENTS)
def test_fast_dumper_writes_the_reference_bytes(doc):
    """dump_document writes exactly what PyYAML alone writes for the same document."""
    assert yamlio.dump_document(doc) == yamlio.reference_dump_document(doc)


@FAST
@given(DOCUMENTS)
def test_dumped_document_reads_back_to_the_input(doc):
    """What dump_document writes loads back, with the safe loader, to the same data."""
    text = yamlio.dump_document(doc)
    assert yaml.safe_load(text) == doc
    assert text.endswith("\n") and not text.endswith("\n\n")


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_strings_keep_their_type_as_values_and_keys(value):
    """Strings YAML 1.1 would read as booleans, numbers, nulls or syntax stay strings."""
    doc = {"value": value, "list": [value, value], value: {"nested": value}}
    text = yamlio.dump_document(doc)
    assert yaml.safe_load(text) == doc
    assert text == yamlio.reference_dump_document(doc)


#: strings shaped like the names, hosts and labels a rendering is made of: most are written
#: plain without asking PyYAML, except the words its resolver reads as another type
PLAIN_LOOKING = st.one_of(
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9_./ -]{0,40}\Z"),
    st.sampled_from(["yes", "Yes", "YES", "no", "NO", "on", "On", "off", "OFF", "true",
                     "False", "null", "Null", "NULL", "n", "y", "N", "Y", "nan", "inf",
                     "a b", "a  b", "a ", "tenant-00001.hooks.example.com", "Tenant 7"]),
)


@FAST
@given(st.lists(PLAIN_LOOKING, max_size=8))
def test_plain_looking_strings_are_written_like_pyyaml(values):
    """Name-like strings, as values, list items and keys, come out byte for byte as PyYAML
    writes them and read back as the same strings."""
    doc = {"values": values, "keys": {v: v for v in values}}
    text = yamlio.dump_document(doc)
    assert text == yamlio.reference_dump_document(doc)
    assert yaml.safe_load(text) == doc


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(texts, inner, max_size=4),
                            st.dictionaries(st.integers(), inner, max_size=2)),
    max_leaves=20,
)


@FAST
@given(json_values)
def test_canonical_json_is_the_json_module_s_bytes(value):
    """Source records are written exactly as json.dumps(sort_keys, indent=2) writes them."""
    expected = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert common.canonical_json(value) == expected.encode()


LINE_BREAKS_AND_LONG_KEYS = [
    pytest.param({"é" * 70: 1}, id="non-ascii-key-over-128-bytes"),
    pytest.param({"€" * 40: {"x": 1}}, id="nested-under-long-non-ascii-key"),
    pytest.param({" \n": 1}, id="key-with-newline"),
    pytest.param({"a\rb": 1}, id="key-with-carriage-return"),
    pytest.param({"\x85": 1}, id="key-with-next-line"),
    pytest.param({"a\u2028b": 1}, id="key-with-line-separator"),
    pytest.param({"x": {"y": "a\u2028b"}}, id="nested-value-with-line-separator"),
    pytest.param({"x": [{"y": "a\u2029b"}]}, id="value-in-list-with-paragraph-separator"),
]


@pytest.mark.parametrize("doc", LINE_BREAKS_AND_LONG_KEYS)
def test_line_breaks_and_long_keys_are_written_like_pyyaml(doc):
    """Keys libyaml writes as complex keys ('? key': over 128 UTF-8 bytes, or containing any
    of YAML 1.1's line breaks) and values it breaks at U+0085/U+2028/U+2029 come out of the
    fast dumper byte for byte as from PyYAML, and read back."""
    text = yamlio.dump_document(doc)
    assert text == yamlio.reference_dump_document(doc)
    assert yaml.safe_load(text) == doc


@FAST
@given(DOCUMENTS, st.randoms(use_true_random=False))
def test_dump_ignores_insertion_order(doc, rnd):
    """A mapping dumps to the same bytes whatever order its keys were inserted in."""
    assert yamlio.dump_document(shuffled(doc, rnd)) == yamlio.dump_document(doc)


def test_multi_document_file_is_canonical():
    """Several documents are joined by '---' lines with LF endings and one final newline."""
    data = yamlio.dump_documents([{"b": 1, "a": [1, 2]}, {}, {"c": None}])
    assert data == b"a:\n- 1\n- 2\nb: 1\n---\n{}\n---\nc: null\n"
    assert list(yaml.safe_load_all(data)) == [{"a": [1, 2], "b": 1}, {}, {"c": None}]


# -- deterministic rendering ---------------------------------------------------------------


def shuffled(data: Any, rnd: random.Random) -> Any:
    """The same data with every mapping's keys inserted in a random order."""
    if isinstance(data, dict):
        items = list(data.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(data, list):
        return [shuffled(v, rnd) for v in data]
    return data


names = st.from_regex(r"\A[a-z]([a-z0-9-]{0,30}[a-z0-9])?\Z")
quantities = st.from_regex(r"\A[1-9][0-9]{0,3}(\.[0-9])?(Mi|Gi|Ti)?\Z")
storages = st.from_regex(r"\A[1-9][0-9]{0,3}(\.[0-9])?(Gi|Ti)\Z")
customer_specs = st.fixed_dictionaries({}, optional={
    "displayName": st.text(max_size=128),
    "suspend": st.booleans(),
    "features": st.fixed_dictionaries({}, optional={
        "database": st.fixed_dictionaries({}, optional={
            "enabled": st.booleans(), "storage": storages,
            "version": st.sampled_from(["14", "15", "16", "17"])}),
        "scheduler": st.fixed_dictionaries({}, optional={
            "enabled": st.booleans(), "workers": st.integers(1, 100)}),
        "webhooks": st.fixed_dictionaries({}, optional={
            "enabled": st.booleans(), "replicas": st.integers(1, 20)}),
    }),
    "quota": st.fixed_dictionaries({}, optional={
        "cpu": quantities, "memory": quantities, "pods": st.integers(1, 10000)}),
})
preview_specs = st.fixed_dictionaries({
    "app": names,
    "branch": st.from_regex(r"\A[a-z]{1,8}(/[a-z0-9_-]{1,12}){0,2}\Z"),
    "commit": st.from_regex(r"\A[0-9a-f]{40}\Z"),
    "image": st.from_regex(r"\Aregistry\.example\.com/[a-z]{1,10}:[0-9a-f]{7}\Z"),
}, optional={
    "host": st.from_regex(r"\A[a-z]{1,10}\.example\.(com|net)\Z"),
    "ttl": st.sampled_from(["72h", "7d", "90m", "1d12h"]),
    "port": st.integers(1, 65535),
    "suspend": st.booleans(),
})
metadata = st.fixed_dictionaries({"name": names}, optional={
    "uid": st.uuids().map(str), "generation": st.integers(1, 10**6),
    "labels": st.dictionaries(st.from_regex(r"\A[a-z]{1,10}\Z"), st.text(max_size=10), max_size=3),
})
SETTINGS = [Settings(), Settings(domain="apps.corp.test", storage_class="fast",
                                 namespace_pattern="t-{name}")]
RENDER = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RENDER
@given(metadata, customer_specs, st.sampled_from(SETTINGS), st.randoms(use_true_random=False))
def test_customer_renders_the_same_bytes_whatever_the_key_order(meta, spec, cfg, rnd):
    """A Customer renders to identical files twice over and from a document whose mappings
    were written in another order."""
    doc = {"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer", "metadata": meta,
           "spec": spec}
    first = customers.render_customer(Customer.model_validate(doc), cfg)
    again = customers.render_customer(Customer.model_validate(doc), cfg)
    reordered = customers.render_customer(Customer.model_validate(shuffled(doc, rnd)), cfg)
    assert dict(first.files) == dict(again.files) == dict(reordered.files)
    assert first.input_hash == reordered.input_hash
    assert_canonical(first.files)


@RENDER
@given(metadata, preview_specs, st.sampled_from(SETTINGS), st.randoms(use_true_random=False))
def test_preview_renders_the_same_bytes_whatever_the_key_order(meta, spec, cfg, rnd):
    """A Preview renders to identical files twice over and from a reordered document."""
    doc = {"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Preview", "metadata": meta,
           "spec": spec}
    first = previews.render_preview(Preview.model_validate(doc), cfg)
    reordered = previews.render_preview(Preview.model_validate(shuffled(doc, rnd)), cfg)
    assert dict(first.files) == dict(reordered.files)
    assert_canonical(first.files)


@RENDER
@given(st.lists(names, unique=True, max_size=12), st.randoms(use_true_random=False))
def test_pool_renders_the_same_bytes_whatever_the_customer_order(db_names, rnd):
    """The pool's files depend on which Customers have a database, not on their order."""
    cfg = Settings()
    entries = [pool.entry_for(n, cfg) for n in db_names]
    other = list(entries)
    rnd.shuffle(other)
    first = pool.render_pool(entries, cfg)
    assert dict(first.files) == dict(pool.render_pool(other, cfg).files)
    assert first.input_hash == pool.pool_input_hash(other, cfg)


def assert_canonical(files: Any) -> None:
    """Every rendered YAML file is already in canonical form: re-dumping it changes nothing."""
    for rel, data in files.items():
        if rel.endswith(".yaml"):
            assert yamlio.dump_documents(list(yaml.safe_load_all(data))) == data, rel
            assert data.endswith(b"\n") and not data.endswith(b"\n\n") and b"\r\n" not in data


def test_dumped_documents_are_what_parsing_the_bytes_gives():
    """The remembered documents behind dumped bytes equal the documents parsed back, and
    bytes never dumped here are parsed."""
    docs = [{"kind": "Service", "metadata": {"name": "web", "labels": {"a": "1"}},
             "spec": {"ports": [{"port": 80}]}}, {"kind": "Namespace", "n": 3}]
    data = yamlio.dump_documents(iter(docs))
    assert yamlio.dumped_documents(data) == list(yamlio.load_documents(data)) == docs
    foreign = b"kind: Pod\nmetadata: {name: x}\n"
    assert yamlio.dumped_documents(foreign) == [{"kind": "Pod", "metadata": {"name": "x"}}]


@pytest.mark.parametrize("count", [0, 1, 3, 250])
def test_pool_hash_fed_an_entry_at_a_time_is_the_one_already_recorded(count: int):
    """The pool's input hash, streamed to save memory, equals the one-shot digest that
    existing config repos recorded: an upgrade re-renders no pool."""
    cfg = Settings()
    entries = [pool.entry_for(f"t{i:04d}", cfg) for i in range(count)]
    expected = common.digest([common.RENDER_VERSION, "pool",
                              [[e.name, e.host, e.role] for e in sorted(entries)],
                              cfg.fingerprint])
    assert pool.pool_input_hash(reversed(entries), cfg) == expected



@RENDER
@given(st.lists(names, unique=True, max_size=40), st.booleans())
def test_the_pool_hashed_a_line_at_a_time_has_the_ids_of_its_rendered_files(db_names, store):
    """The blob ids a pass compares with the repo's pool, made without holding the pool's
    text, are those of the files ``render_pool`` writes (with and without ExternalSecrets)."""
    cfg = Settings(external_secrets=ExternalSecrets(store="vault") if store else None)
    rendered = pool.render_pool([pool.entry_for(n, cfg) for n in db_names], cfg)
    chunks = pool.pool_chunks(reversed(db_names), cfg)
    assert {rel: plan.git_blob_id_of(produce) for rel, produce in chunks.items()} == \
        {rel: plan.git_blob_id(data) for rel, data in rendered.files.items()}
    assert {rel: b"".join(produce()) for rel, produce in chunks.items()} == dict(rendered.files)

# -- loading -------------------------------------------------------------------------------


@FAST
@given(st.lists(documents(texts, texts), min_size=1, max_size=3))
def test_loader_reads_what_pyyaml_reads(docs):
    """Plain documents load to exactly what PyYAML's safe loader makes of them."""
    data = b"---\n".join(yamlio.dump_document(d).encode() for d in docs)
    assert list(yamlio.load_documents(data)) == list(yaml.safe_load_all(data)) == docs


@pytest.mark.parametrize("text", [
    "a: &x {b: [1, 2]}\nc: *x\n",
    "base: &b {x: 1}\nmerged:\n  <<: *b\n  y: 2\n",
    "when: 2024-01-01\nbin: !!binary aGk=\n1: int key\n",
    "x: " + "[" * 100 + "]" * 100 + "\n",
    "a: 0x10\nb: 1_000\nc: .inf\nd: ~\ne: yes\nf: '07'\n",
])
def test_loader_reads_unusual_documents_like_pyyaml(text):
    """Anchors, merge keys, timestamps, binary, non-string keys and deep nesting load as
    PyYAML's safe loader loads them."""
    assert list(yamlio.load_documents(text)) == list(yaml.safe_load_all(text))


def test_loader_keeps_aliases_shared():
    """An alias names the same object as its anchor (a document of nested aliases stays
    small in memory instead of being copied out)."""
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
        for i in range(6))
    doc = yamlio.load_document(laughs)
    assert doc["b"][0] is doc["a"] and doc["g"][9] is doc["f"]


def test_loader_still_refuses_a_duplicate_key():
    """A key named twice in one mapping is refused with its line, also deep in a document."""
    with pytest.raises(yamlio.YAMLError, match=r"duplicate key 'name' \(first at line 3\)"):
        yamlio.load_document("kind: Customer\nmetadata:\n  name: a\n  name: b\n")


def test_remembered_tags_keep_every_scalar_s_type(monkeypatch):
    """The same scalars read again (their tags remembered), plain, quoted or as keys, and
    once the memory is full, load to what PyYAML's safe loader makes of them."""
    text = ("t: true\nq: 'true'\ny: yes\nn: null\nz: ~\ni: 7\nh: 0x1F\nu: 1_000\nf: 1.5\n"
            "inf: .inf\ns: '7'\nd: 2024-01-01\ne: ''\ntrue: key\n7: int key\n"
            "l: [true, 'true', 7, '7', ~]\n")
    expected = yaml.safe_load(text)
    monkeypatch.setattr(yamlio, "_RESOLVED", {})
    assert yamlio.load_document(text) == expected
    assert yamlio.load_document(text) == expected  # the tags now come from memory
    monkeypatch.setattr(yamlio, "_RESOLVED_MAX", 0)
    monkeypatch.setattr(yamlio, "_RESOLVED", {})
    assert yamlio.load_document(text) == expected
    assert yamlio._RESOLVED == {}
