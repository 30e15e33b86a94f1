"""PostgreSQL bulk statements whose rows travel as one array per column (`unnest`).

Why not SQLAlchemy's multi-row INSERT ("insertmanyvalues") or an executemany: those process
every value of every row in Python (about a third of a 1,000-job submit's CPU), and their SQL
text grows with the row count, so each new batch size is a new prepared statement (one more
round trip, and a plan). Here the statement text depends only on the columns, asyncpg encodes
each array in C, and the whole batch is one statement: one round trip for any number of rows.

SQLite has no arrays; the repository keeps the portable statements there."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

_DIALECT: Dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_QUOTE = _DIALECT.identifier_preparer.quote
# One encoder, built once: `json.dumps` with options builds a new encoder on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ArrayColumns:
    """Some columns of a table, passed as one array parameter each, named `<prefix><i>`."""

    table: Table
    keys: tuple[str, ...]
    prefix: str

    def _is_json(self, key: str) -> bool:
        return isinstance(self.table.c[key].type, JSON)

    def _is_enum(self, key: str) -> bool:
        return isinstance(self.table.c[key].type, SAEnum)

    def unnest(self, alias: str, *, numbered: bool = False) -> str:
        """`unnest(CAST(:p0 AS type[]), ...) AS alias(col, ...)`; JSON columns arrive as text.
        `numbered` adds each row's position as `alias.n` (WITH ORDINALITY)."""
        arrays = ", ".join(
            f"CAST(:{self.prefix}{i} AS "
            f"{'TEXT' if self._is_json(key) else self.table.c[key].type.compile(_DIALECT)}[])"
            for i, key in enumerate(self.keys)
        )
        names = ", ".join(_QUOTE(self.table.c[key].name) for key in self.keys)
        if numbered:
            return f"unnest({arrays}) WITH ORDINALITY AS {alias}({names}, n)"
        return f"unnest({arrays}) AS {alias}({names})"

    def values(self, alias: str) -> str:
        """The columns of `alias` in order, JSON text cast back to the column's type."""
        return ", ".join(
            f"CAST({alias}.{_QUOTE(self.table.c[key].name)} AS JSONB)"
            if self._is_json(key)
            else f"{alias}.{_QUOTE(self.table.c[key].name)}"
            for key in self.keys
        )

    def names(self) -> str:
        return ", ".join(_QUOTE(self.table.c[key].name) for key in self.keys)

    def params(
        self, rows: Sequence[Mapping[str, Any]], key_of: Callable[[str], str] = str
    ) -> dict[str, list[Any]]:
        """One list per column (`key_of(column key)` is the rows' key for it)."""
        out: dict[str, list[Any]] = {}
        for i, key in enumerate(self.keys):
            name = key_of(key)
            if self._is_json(key):
                out[f"{self.prefix}{i}"] = [
                    None if row[name] is None else _JSON.encode(row[name]) for row in rows
                ]
            elif self._is_enum(key):
                # Stored as the member's text (non-native enum columns).
                out[f"{self.prefix}{i}"] = [
                    row[name].value if isinstance(row[name], Enum) else row[name] for row in rows
                ]
            else:
                out[f"{self.prefix}{i}"] = [row[name] for row in rows]
        return out


@cache
def insert_sql(
    table: Table, keys: tuple[str, ...], *, prefix: str = "p", where: str = "", suffix: str = ""
) -> str:
    """`INSERT INTO table (keys) SELECT ... FROM unnest(...) [WHERE ...]` in the arrays' order
    (+ `suffix`, e.g. ON CONFLICT). The explicit order matters where ids come from a sequence
    (history is read back by id): a WHERE with a semi-join may otherwise be planned as a hash
    join that reorders the rows."""
    columns = ArrayColumns(table, keys, prefix)
    return (
        f"INSERT INTO {_QUOTE(table.name)} ({columns.names()}) "
        f"SELECT {columns.values('r')} FROM {columns.unnest('r', numbered=True)}{where}"
        f" ORDER BY r.n{suffix}"
    )
