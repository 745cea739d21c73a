"""Reading a kind's analysed fields straight from a record's bytes.

Validation and normalisation need a dozen fields of records that can be much wider. msgspec
decodes just the top-level members those fields live under (skipping the rest in C), which
is several times cheaper than building the whole record as Python objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from vault_pipeline.core.kinds import kind_columns

NOT_AN_OBJECT = object()


class Projector:
    def __init__(self, kind: str, fields: Mapping[str, str] | None = None) -> None:
        """``fields`` maps columns to the provider's own dotted paths (vault.yaml ``fields``)."""
        self.columns = kind_columns(kind, fields)
        paths = [column.path.split(".") for column in self.columns]
        members = list(dict.fromkeys(path[0] for path in paths))
        struct = msgspec.defstruct(
            f"{kind}_projection",
            [(f"m{i}", Any, msgspec.field(default=None, name=name)) for i, name in enumerate(members)],
        )
        self._decoder = msgspec.json.Decoder(struct)
        index = {name: i for i, name in enumerate(members)}
        self._steps = [(f"m{index[path[0]]}", path[1:]) for path in paths]
        typed = {tuple(path): c.type for path, c in zip(paths, self.columns)}
        if _consistent(paths, self.columns):
            leaves = [(list(path), t) for path, t in typed.items()]
            self._typed = msgspec.json.Decoder(_typed_struct(f"{kind}_typed", leaves, _TYPES))
            self._exact = msgspec.json.Decoder(_typed_struct(f"{kind}_exact", leaves, _EXACT_TYPES))
            self._typed_values = _getter(_positions(paths))
        else:  # a provider's fields read one path as two types, or as a value and an object
            self._typed = self._exact = None

    def project_typed(self, data: bytes | memoryview) -> tuple[Any, ...] | None:
        """The column values already in their declared types (None where absent or null), or
        None when any value has another JSON type (or the record is not an object): the caller
        then coerces ``project``'s values. One C-level decode per record, no Python per field."""
        return self._leaves(self._typed, data)

    def project_exact(self, data: bytes | memoryview) -> tuple[Any, ...] | None:
        """The column values exactly as the JSON holds them (a float column's integer stays an
        int, so its JSON type can still be told), or None when any value is not of its column's
        type: the caller then looks at ``project``'s values one by one. For input validation,
        which reports each value's JSON type beside it."""
        return self._leaves(self._exact, data)

    def _leaves(self, decoder: msgspec.json.Decoder | None, data: bytes | memoryview) -> tuple[Any, ...] | None:
        if decoder is None:
            return None
        try:
            return self._typed_values(decoder.decode(data))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, AttributeError):
            return None

    def project(self, data: bytes) -> list[Any] | object:
        """The column values in KIND_COLUMNS order, or NOT_AN_OBJECT for a non-object record."""
        try:
            decoded = self._decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return NOT_AN_OBJECT
        values = []
        for attribute, rest in self._steps:
            value = getattr(decoded, attribute)
            for part in rest:
                value = value.get(part) if isinstance(value, dict) else None
            values.append(value)
        return values


_TYPES = {
    "string": str,
    "bool": bool,
    "int": Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],  # an int64 column
    "float": float,  # JSON integers are accepted and become floats, as coercion does
    "list": list[str],  # an array of strings; any other item sends the record to coercion
}
# As the JSON has them: 3 stays an int in a float column (``_TYPES`` would make it 3.0).
_EXACT_TYPES = {**_TYPES, "float": int | float}


def _consistent(paths: list[list[str]], columns) -> bool:
    """Whether one typed struct can hold every path: a path repeated (two columns mapped to one
    field) has one type, and no path is a leaf and a parent at once."""
    types: dict[tuple[str, ...], str] = {}
    for path, column in zip(paths, columns, strict=True):
        if types.setdefault(tuple(path), column.type) != column.type:
            return False
    return not any(other[: len(leaf)] == leaf and other != leaf for leaf in types for other in types)


def _positions(paths: list[list[str]]) -> list[tuple[int, ...]]:
    """Each path as field positions in the nested typed structs (f<i> at every level)."""
    tree: dict = {}
    result = []
    for path in paths:
        node, position = tree, []
        for part in path:
            if part not in node:
                node[part] = {}
            position.append(list(node).index(part))
            node = node[part]
        result.append(tuple(position))
    return result


def _getter(positions: list[tuple[int, ...]]):
    """A function returning the leaf values of a decoded typed struct as a tuple; a missing
    or null parent object gives None for its leaves, as ``project`` does."""
    names: dict[tuple[int, ...], str] = {(): "o"}
    lines = []
    for position in positions:
        for depth in range(1, len(position)):
            parent = position[:depth]
            if parent not in names:
                names[parent] = f"p{len(names)}"
                above = names[parent[:-1]]
                lines.append(f"    {names[parent]} = None if {above} is None else {above}.f{parent[-1]}")
    leaves = []
    for position in positions:
        parent = names[position[:-1]]
        leaves.append(f"{parent}.f{position[-1]}" if parent == "o" else f"(None if {parent} is None else {parent}.f{position[-1]})")
    source = "def values(o):\n" + "".join(line + "\n" for line in lines) + f"    return ({', '.join(leaves)},)\n"
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - generated from the kind's fixed column paths only
    return namespace["values"]


def _typed_struct(name: str, columns: list[tuple[list[str], str]], types: Mapping[str, Any]) -> type:
    """Nested structs whose leaves are ``types[<column type>] | None`` (every member optional,
    default None)."""
    members: dict[str, list[tuple[list[str], str]]] = {}
    for path, type_name in columns:
        members.setdefault(path[0], []).append((path[1:], type_name))
    fields = []
    for i, (member, children) in enumerate(members.items()):
        if children == [([], children[0][1])]:
            annotation = types[children[0][1]] | None
        else:
            annotation = _typed_struct(f"{name}_{i}", children, types) | None
        fields.append((f"f{i}", annotation, msgspec.field(default=None, name=member)))
    return msgspec.defstruct(name, fields)
