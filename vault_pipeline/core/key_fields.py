"""Reading just a record's natural id and event time, fast, from its exact bytes.

Landing has to name every record (its ``log_id``) and place it in time before anything else
happens. Decoding only those two fields (msgspec skips the rest in C) keeps landing cheap
even for wide records; dotted paths fall back to a full decode.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vault_pipeline.core.framing import decode_record
from vault_pipeline.core.identity import lookup


class KeyFieldsDecoder:
    def __init__(self, id_field: str, time_field: str) -> None:
        self.id_field, self.time_field = id_field, time_field
        self._fast = None
        if "." not in id_field and "." not in time_field and id_field != time_field:
            struct = msgspec.defstruct(
                "KeyFields",
                [
                    ("natural_id", Any, msgspec.field(default=None, name=id_field)),
                    ("event_time", Any, msgspec.field(default=None, name=time_field)),
                ],
            )
            self._fast = msgspec.json.Decoder(struct)

    def decode(self, data: bytes) -> tuple[Any, Any, bool]:
        """(natural id value, event time value, is_object); values are None when absent."""
        if self._fast is not None:
            try:
                fields = self._fast.decode(data)
                return fields.natural_id, fields.event_time, True
            except msgspec.ValidationError:
                return None, None, False  # valid JSON, but not an object
            except msgspec.DecodeError:
                return None, None, False
        try:
            value = decode_record(data)
        except ValueError:
            return None, None, False
        if not isinstance(value, dict):
            return None, None, False
        return lookup(value, self.id_field), lookup(value, self.time_field), True
