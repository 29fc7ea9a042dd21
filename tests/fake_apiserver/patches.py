"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over raw objects.

Owns: applying a patch document to a copy of an object. Strategic merge patch is not here: the
server treats it as a merge patch for built-in types, which is close enough for the fields
this project's types use. Pure: no I/O; failures are ``ApiError`` (400 malformed, 422 failed).
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fake_apiserver import errors

RawObject = errors.RawObject


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with an RFC 7386 merge patch applied; ``target`` is left untouched."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _failed(message: str) -> errors.ApiError:
    return errors.ApiError(code=422, reason="Invalid", message=message)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _failed(f"json patch: invalid path {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_insert: bool) -> int:
    if for_insert and token == "-":
        return len(container)
    if not token.isdigit():
        raise _failed(f"json patch: invalid array index {token!r}")
    index = int(token)
    limit = len(container) + (1 if for_insert else 0)
    if index >= limit:
        raise _failed(f"json patch: array index {index} out of bounds")
    return index


def _parent(document: Any, tokens: list[str], path: str) -> Any:
    node = document
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_insert=False)]
        else:
            raise _failed(f"json patch: path {path!r} does not exist")
    return node


def _get(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return document
    parent = _parent(document, tokens, path)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise _failed(f"json patch: path {path!r} does not exist")
        return parent[tokens[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, tokens[-1], for_insert=False)]
    raise _failed(f"json patch: path {path!r} does not exist")


def _remove(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    parent = _parent(document, tokens, path)
    if isinstance(parent, dict) and tokens and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list) and tokens:
        return parent.pop(_index(parent, tokens[-1], for_insert=False))
    raise _failed(f"json patch: unable to remove nonexistent key {path!r}")


def _add(document: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(document, tokens, path)
    if isinstance(parent, dict):
        if replace and tokens[-1] not in parent:
            raise _failed(f"json patch: replace of missing key {path!r}")
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        index = _index(parent, tokens[-1], for_insert=not replace)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    else:
        raise _failed(f"json patch: path {path!r} does not exist")
    return document


def apply_json_patch(target: RawObject, operations: Any) -> RawObject:
    """Return ``target`` with an RFC 6902 JSON patch applied; ``target`` is left untouched."""
    if not isinstance(operations, list):
        raise errors.bad_request("json patch must be a list of operations")
    document: Any = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "path" not in operation:
            raise errors.bad_request(f"invalid json patch operation: {operation!r}")
        op, path = operation.get("op"), operation["path"]
        if op == "add":
            document = _add(document, path, copy.deepcopy(operation.get("value")))
        elif op == "replace":
            document = _add(document, path, copy.deepcopy(operation.get("value")), replace=True)
        elif op == "remove":
            _remove(document, path)
        elif op in ("move", "copy"):
            source = operation.get("from", "")
            value = _remove(document, source) if op == "move" else copy.deepcopy(
                _get(document, source))
            document = _add(document, path, value)
        elif op == "test":
            if _get(document, path) != operation.get("value"):
                raise _failed(f"json patch: test operation for path {path!r} failed")
        else:
            raise errors.bad_request(f"unknown json patch operation {op!r}")
    if not isinstance(document, dict):
        raise _failed("json patch: result is not an object")
    return document
