"""Stripe's form encoding: ``metadata[order]=1&expand[]=x&items[0][price]=p`` into nested data.

Written by hand because the one thing the emulator must reproduce exactly is Stripe's own
bracket convention (``a[b]`` maps, ``a[]`` and ``a[0]`` lists) as the official SDK emits it;
the urlencoding itself is the standard library's. ``Params`` then reads typed values out of
the decoded tree and remembers which keys it consumed, so that an unknown parameter is
refused the way Stripe refuses it (``parameter_unknown``) instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from stripe_emulator.errors import ValidationError

Tree: TypeAlias = dict[str, Any]
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_MAX_PAIRS = 1000


class _Appended(list[str]):
    """Values collected from ``a[]=x&a[]=y`` (kept apart from ``a[0]`` maps until the end)."""


def decode(raw: str | bytes) -> Tree:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_PAIRS)
    except ValueError:
        raise ValidationError(f"Too many parameters: at most {_MAX_PAIRS} are accepted.") from None
    tree: Tree = {}
    for key, value in pairs:
        _insert(tree, _path(key), value, key)
    decoded: Tree = _listify(tree)
    return decoded


def _path(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        raise ValidationError(f"Invalid parameter name: {key}", code="parameter_invalid_string")
    path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
    if "" in path[:-1]:
        raise ValidationError(
            f"Invalid array parameter: {key} (use indexes, a[0][b]=..., for lists of hashes)",
            param=path[0],
        )
    return path


def _insert(tree: Tree, path: list[str], value: str, key: str) -> None:
    appending = path[-1] == ""
    parents, last = (path[:-2], path[-2]) if appending else (path[:-1], path[-1])
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValidationError(f"Invalid nesting for parameter {key}", param=path[0])
        node = child
    existing = node.get(last)
    if appending:
        if existing is None:
            node[last] = existing = _Appended()
        if not isinstance(existing, _Appended):
            raise ValidationError(f"Mixed list styles for parameter {key}", param=path[0])
        existing.append(value)
    elif existing is not None and not isinstance(existing, str):
        raise ValidationError(f"Invalid nesting for parameter {key}", param=path[0])
    else:
        node[last] = value


def _listify(node: Any) -> Any:
    """Turn ``a[]`` collections and ``{"0": .., "1": ..}`` (``a[0]``) maps into lists."""
    if isinstance(node, _Appended):
        return list(node)
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def fingerprint(method: str, path: str, raw: bytes) -> str:
    """Hash of a request's parameters, insensitive to their order on the wire."""
    pairs = sorted(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    digest = hashlib.sha256(f"{method} {path}".encode())
    for key, value in pairs:
        digest.update(b"\x00" + key.encode() + b"=" + value.encode())
    return digest.hexdigest()


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's metadata update: keys merge, ``key=""`` unsets a key, ``metadata=""`` all."""
    if update is None:
        return current
    if not update:
        return {}
    return {k: v for k, v in {**current, **update}.items() if v != ""}


_TRUE = {"true", "1"}
_FALSE = {"false", "0", ""}


class Params:
    """Typed, consuming reads of one request's decoded parameters."""

    def __init__(self, tree: Tree) -> None:
        self._tree = tree
        self._seen: set[str] = {"expand"}

    def has(self, name: str) -> bool:
        return name in self._tree

    def _raw(self, name: str, required: bool) -> Any:
        self._seen.add(name)
        if name not in self._tree:
            if required:
                raise ValidationError(
                    f"Missing required param: {name}.", code="parameter_missing", param=name
                )
            return None
        return self._tree[name]

    def text(
        self, name: str, *, required: bool = False, choices: tuple[str, ...] | None = None
    ) -> str | None:
        value = self._raw(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValidationError(
                f"Invalid string: {name}", code="parameter_invalid_string", param=name
            )
        if choices is not None and value not in choices:
            allowed = ", ".join(choices)
            raise ValidationError(
                f"Invalid {name}: must be one of {allowed}",
                code="parameter_invalid_string",
                param=name,
            )
        return value

    def required_text(self, name: str, *, choices: tuple[str, ...] | None = None) -> str:
        value = self.text(name, required=True, choices=choices)
        if value is None:  # unreachable: required=True raises first; kept for the type checker
            raise ValidationError(f"Missing required param: {name}.", param=name)
        return value

    def required_integer(self, name: str, *, minimum: int | None = None) -> int:
        value = self.integer(name, required=True, minimum=minimum)
        if value is None:  # unreachable: required=True raises first; kept for the type checker
            raise ValidationError(f"Missing required param: {name}.", param=name)
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self._raw(name, required)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValidationError(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
            ) from None
        if minimum is not None and number < minimum:
            raise ValidationError(
                f"This value must be greater than or equal to {minimum}.",
                code="parameter_invalid_integer",
                param=name,
            )
        return number

    def flag(self, name: str) -> bool | None:
        value = self._raw(name, False)
        if value is None:
            return None
        if isinstance(value, str) and value.lower() in _TRUE:
            return True
        if isinstance(value, str) and value.lower() in _FALSE:
            return False
        raise ValidationError(
            f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=name
        )

    def text_list(self, name: str, *, required: bool = False) -> list[str] | None:
        value = self._raw(name, required)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(
                f"Invalid array: {name}", code="parameter_invalid_array", param=name
            )
        return list(value)

    def metadata(self, name: str = "metadata") -> dict[str, str] | None:
        """Stripe's limits: 50 keys, keys ≤ 40 chars, values ≤ 500 chars; "" unsets a key."""
        value = self._raw(name, False)
        if value is None:
            return None
        if value == "":
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError("Invalid metadata: must be a hash of strings", param=name)
        if len(value) > 50:
            raise ValidationError("Metadata can have at most 50 keys.", param=name)
        for key, item in value.items():
            if len(key) > 40 or len(item) > 500:
                raise ValidationError(
                    "Metadata keys are limited to 40 characters and values to 500.",
                    param=f"{name}[{key}]",
                )
        return dict(value)

    def mapping(self, name: str) -> dict[str, Any] | None:
        value = self._raw(name, False)
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise ValidationError(
                f"Invalid hash: {name}", code="parameter_invalid_string", param=name
            )
        return value

    def expand(self) -> set[str]:
        value = self._tree.get("expand")
        if value is None:
            return set()
        return {value} if isinstance(value, str) else {str(v) for v in value}

    def finish(self) -> None:
        """Refuse whatever the endpoint did not read, as Stripe does."""
        for name in self._tree:
            if name not in self._seen:
                raise ValidationError(
                    f"Received unknown parameter: {name}", code="parameter_unknown", param=name
                )
