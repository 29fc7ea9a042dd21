"""Decoding the protobuf request bodies kubectl's typed clients send, for Namespaces only.

Owns: the protobuf wire format (varints, length-delimited fields), the ``k8s\\x00`` +
``runtime.Unknown`` envelope, and the field numbers of ObjectMeta and Namespace. kubectl
encodes a body as protobuf only in commands built on typed clientsets, and of the types served
here only ``kubectl create namespace`` does that; every other body arrives as JSON. Responses
are always JSON, which kubectl accepts. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.fake_apiserver import errors

RawObject = errors.RawObject
MAGIC = b"k8s\x00"
_OBJECT_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid",
                        6: "resourceVersion"}
_OBJECT_META_MAPS = {11: "labels", 12: "annotations"}
_OBJECT_META_FINALIZERS = 14


def _varint(data: bytes, index: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if index >= len(data):
            raise errors.bad_request("truncated protobuf body")
        byte = data[index]
        value |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            return value, index
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) pairs; length-delimited values stay bytes."""
    index = 0
    while index < len(data):
        key, index = _varint(data, index)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, index = _varint(data, index)
            yield number, value
        elif wire_type == 2:
            length, index = _varint(data, index)
            yield number, data[index:index + length]
            index += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            yield number, data[index:index + size]
            index += size
        else:
            raise errors.bad_request(f"unsupported protobuf wire type {wire_type}")


def _strings(data: bytes) -> dict[int, str]:
    return {number: value.decode() for number, value in _fields(data)
            if isinstance(value, bytes)}


def _object_meta(data: bytes) -> RawObject:
    metadata: RawObject = {}
    for number, value in _fields(data):
        if not isinstance(value, bytes):
            continue
        if number in _OBJECT_META_STRINGS and value:  # proto3 sends empty strings too
            metadata[_OBJECT_META_STRINGS[number]] = value.decode()
        elif number in _OBJECT_META_MAPS:
            entry = _strings(value)
            metadata.setdefault(_OBJECT_META_MAPS[number], {})[entry.get(1, "")] = entry.get(2, "")
        elif number == _OBJECT_META_FINALIZERS:
            metadata.setdefault("finalizers", []).append(value.decode())
    return metadata


def decode_object(body: bytes) -> RawObject:
    """Decode a protobuf-encoded Namespace; any other type is refused with 415."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body without the k8s envelope")
    envelope = {number: value for number, value in _fields(body[len(MAGIC):])}
    type_meta = envelope.get(1, b"")
    raw = envelope.get(2, b"")
    assert isinstance(type_meta, bytes) and isinstance(raw, bytes)
    names = _strings(type_meta)
    if (names.get(1), names.get(2)) != ("v1", "Namespace"):
        raise errors.unsupported_media_type(("application/json", "application/yaml"))
    namespace: RawObject = {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}
    for number, value in _fields(raw):
        if number == 1 and isinstance(value, bytes):
            namespace["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [v.decode() for n, v in _fields(value) if n == 1 and isinstance(v, bytes)]
            namespace["spec"] = {"finalizers": finalizers} if finalizers else {}
    return namespace
