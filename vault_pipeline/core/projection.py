"""Reading a kind's analysed fields straight from a record's bytes.

Validation and normalisation need a dozen fields of records that can be much wider. msgspec
decodes just the top-level members those fields live under (skipping the rest in C), which
is several times cheaper than building the whole record as Python objects.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vault_pipeline.core.kinds import KIND_COLUMNS

NOT_AN_OBJECT = object()


class Projector:
    def __init__(self, kind: str) -> None:
        self.columns = KIND_COLUMNS[kind]
        paths = [column.path.split(".") for column in self.columns]
        members = list(dict.fromkeys(path[0] for path in paths))
        struct = msgspec.defstruct(
            f"{kind}_projection",
            [(f"m{i}", Any, msgspec.field(default=None, name=name)) for i, name in enumerate(members)],
        )
        self._decoder = msgspec.json.Decoder(struct)
        index = {name: i for i, name in enumerate(members)}
        self._steps = [(f"m{index[path[0]]}", path[1:]) for path in paths]

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
