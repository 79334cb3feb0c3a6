"""Running the sql/ statements cheaply: compiled once per dialect, executed on the DBAPI cursor.

SQLAlchemy's per-execution work (cache lookup, parameter processing, result metadata) cost more
than SQLite itself on the lease hot path: about 0.1 ms a statement, a dozen statements a cycle.
An IN list's statement is expanded by SQLAlchemy once per list length and then runs here too
(lists of up to SHORT_LIST items: a longer one, rare, goes through SQLAlchemy, so the texts kept
stay few and short).
A statement that needs SQLAlchemy at execution time (Python-side column defaults, literal
rendering, a type processor on an IN list, executemany) still goes through it, on the same
transaction.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple, Optional, Union

from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

Params = Union[Mapping[str, Any], Sequence[Mapping[str, Any]], None]
SHORT_LIST = 32


class Compiled(NamedTuple):
    text: str
    args: Callable[[dict[str, Any]], Any]  # the DBAPI's parameters from the values by name
    defaults: dict[str, Any]  # values SQLAlchemy bound itself (literals in the statement)
    processors: dict[str, Any]  # the column types' conversions of parameters (to_float, ...)
    expanding: tuple[str, ...] = ()  # IN lists: the text above is a template, expanded per lengths
    source: Any = None  # SQLAlchemy's compiled statement, which expands it


class Expanded(NamedTuple):
    text: str
    args: Callable[[dict[str, Any]], Any]
    expansion: dict[str, list[str]]  # an IN list's name -> the names of its items' parameters


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

    def __init__(self, connection: Connection, cache: dict[Any, Any]):
        self.connection = connection
        self._cache = cache
        self._cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def execute(self, statement: Executable, params: Params = None) -> Result:
        if params is None:
            params = {}
        elif type(params) is not dict and not isinstance(params, Mapping):  # executemany: not a hot path
            return self._through_sqlalchemy(statement, params)
        key = (statement, frozenset(params))
        if key not in self._cache:
            self._cache[key] = _compile(self.connection, statement, params)
        compiled = self._cache[key]
        if compiled is None:
            return self._through_sqlalchemy(statement, params)
        values = {**compiled.defaults, **params}
        for name, process in compiled.processors.items():
            values[name] = process(values[name])
        text, args = compiled.text, compiled.args
        if compiled.expanding:
            lengths = (key, tuple(len(values[n]) for n in compiled.expanding))
            if max(lengths[1]) > SHORT_LIST:
                return self._through_sqlalchemy(statement, params)
            if lengths not in self._cache:
                self._cache[lengths] = _expand(compiled, values)
            shape: Expanded = self._cache[lengths]
            for name, items in shape.expansion.items():
                values.update(zip(items, values.pop(name), strict=True))
            text, args = shape.text, shape.args
        cur = self._cursor
        cur.execute(text, args(values))
        if cur.description is None:
            return Result([], cur.rowcount)
        record = _record_type(tuple(d[0] for d in cur.description))
        return Result([record(*row) for row in cur.fetchall()], cur.rowcount)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """What runs inside is undone if it raises; the transaction goes on."""
        cur = self._cursor
        cur.execute("SAVEPOINT one")
        try:
            yield
        except BaseException:
            cur.execute("ROLLBACK TO SAVEPOINT one")
            raise
        finally:
            cur.execute("RELEASE SAVEPOINT one")

    def _through_sqlalchemy(self, statement: Executable, params: Params) -> Result:
        result = self.connection.execute(statement, params)
        return Result(list(result) if result.returns_rows else [], result.rowcount)


def _compile(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> Optional[Compiled]:
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(params))  # type: ignore[attr-defined]
    processors = dict(compiled._bind_processors)
    expanding = tuple(sorted(compiled.bind_names[bp] for bp in compiled.post_compile_params))
    needs_sqlalchemy = (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or any(not bp.expanding for bp in compiled.post_compile_params)
        or any(name in processors for name in expanding)
    )
    if needs_sqlalchemy:
        return None
    defaults = {name: bp.effective_value for bp, name in compiled.bind_names.items() if not bp.required}
    args = _args(compiled.positiontup if compiled.positional else None)
    return Compiled(compiled.string, args, defaults, processors, expanding, compiled if expanding else None)


def _expand(compiled: Compiled, values: Mapping[str, Any]) -> Expanded:
    """The statement for IN lists of these lengths (an empty list is SQLAlchemy's empty-set form)."""
    state = compiled.source.construct_expanded_state(values)
    return Expanded(
        state.statement, _args(state.positiontup), {k: list(v) for k, v in state.parameter_expansion.items()}
    )


def _args(positional: Optional[Sequence[str]]) -> Callable[[dict[str, Any]], Any]:
    """Named parameters (pyformat) as they are; positional ones (qmark) as a tuple in their order."""
    if positional is None:
        return lambda values: values
    if len(positional) == 1:
        only = positional[0]
        return lambda values: (values[only],)
    return itemgetter(*positional) if positional else lambda values: ()
