"""Running the sql/ statements cheaply: compiled once per dialect, executed on the DBAPI cursor.

SQLAlchemy's per-execution work (cache lookup, parameter processing, result metadata) cost more
than SQLite itself on the lease hot path: about 0.1 ms a statement, a dozen statements a cycle.
A statement that needs SQLAlchemy at execution time (expanding IN lists, Python-side column
defaults, type processors, executemany) still goes through it, on the same transaction.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple, Optional, Union

from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

Params = Union[Mapping[str, Any], Sequence[Mapping[str, Any]], None]


class Compiled(NamedTuple):
    text: str
    names: Optional[tuple[str, ...]]  # positional order (qmark), or None for named (pyformat)
    defaults: dict[str, Any]  # values SQLAlchemy bound itself (literals in the statement)
    processors: dict[str, Any]  # the column types' conversions of parameters (to_float, ...)


@cache
def _record_type(names: tuple[str, ...]) -> type:
    base = namedtuple("Record", names, rename=True)  # type: ignore[misc]
    return type("Record", (base,), {"__slots__": (), "_mapping": property(lambda self: self._asdict())})


class Result:
    """The part of SQLAlchemy's Result the ledger uses, over rows already fetched."""

    def __init__(self, rows: list[Any], rowcount: int):
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def all(self) -> list[Any]:
        return self.rows

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [r[0] for r in self.rows]


class Tx:
    """One transaction on one connection; `execute` is the only way the ledger runs SQL."""

    def __init__(self, connection: Connection, cache: dict[Any, Optional[Compiled]]):
        self.connection = connection
        self._cache = cache
        self._cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def execute(self, statement: Executable, params: Params = None) -> Result:
        if isinstance(params, Sequence):  # executemany: not a hot path
            return self._through_sqlalchemy(statement, params)
        params = params or {}
        key = (statement, frozenset(params))
        if key not in self._cache:
            self._cache[key] = _compile(self.connection, statement, params)
        compiled = self._cache[key]
        if compiled is None:
            return self._through_sqlalchemy(statement, params)
        values = {**compiled.defaults, **params}
        for name, process in compiled.processors.items():
            values[name] = process(values[name])
        cur = self._cursor
        cur.execute(compiled.text, values if compiled.names is None else tuple(values[n] for n in compiled.names))
        if cur.description is None:
            return Result([], cur.rowcount)
        record = _record_type(tuple(d[0] for d in cur.description))
        return Result([record(*row) for row in cur.fetchall()], cur.rowcount)

    def _through_sqlalchemy(self, statement: Executable, params: Params) -> Result:
        result = self.connection.execute(statement, params)
        return Result(list(result) if result.returns_rows else [], result.rowcount)


def _compile(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> Optional[Compiled]:
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(params))  # type: ignore[attr-defined]
    needs_sqlalchemy = (
        compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
    )
    if needs_sqlalchemy:
        return None
    defaults = {name: bp.effective_value for bp, name in compiled.bind_names.items() if not bp.required}
    names = tuple(compiled.positiontup) if compiled.positional else None
    return Compiled(compiled.string, names, defaults, dict(compiled._bind_processors))
