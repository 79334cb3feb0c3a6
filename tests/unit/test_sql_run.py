"""The ledger's statement runner and write transactions: IN lists on the fast path give what
SQLAlchemy gives, and a grant's commit is not flushed on its own while a result's is."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, text

from server.ledger.database import Database, make_engine
from server.ledger.sql.run import SHORT_LIST

meta = MetaData()
item = Table("item", meta, Column("id", Integer, primary_key=True), Column("lang", String), Column("state", String))
by_langs = select(item.c.id).where(item.c.lang.in_(bindparam("langs", expanding=True))).order_by(item.c.id)
# Two IN lists, one of them literal (SQLAlchemy expands both at execution time).
by_langs_and_state = by_langs.where(item.c.state.in_(["queued", "leased"]))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = Database(make_engine(url))
    meta.create_all(database.engine)
    rows = [(1, "en", "queued"), (2, "fr", "leased"), (3, "de", "done"), (4, "fr", "queued"), (5, "es", "queued")]
    with database.engine.begin() as c:
        c.execute(item.insert(), [{"id": i, "lang": lang, "state": s} for i, lang, s in rows])
    yield database
    database.dispose()


@pytest.mark.parametrize("statement", [by_langs, by_langs_and_state])
def test_in_lists_of_any_length_give_what_sqlalchemy_gives(db, statement):
    for langs in (["fr"], ["en", "fr", "de"], [], ["fr", "es"], ["fr"]):  # lengths seen before come back
        with db.reading() as c:
            fast = c.execute(statement, {"langs": langs}).scalars()
            through = [r[0] for r in c.connection.execute(statement, {"langs": langs})]
        assert fast == through, langs
    with db.reading() as c:
        long = ["fr", *(f"x{i}" for i in range(SHORT_LIST))]  # too long to keep a text for: SQLAlchemy's
        assert [r[0] for r in c.execute(statement, {"langs": long})] == [2, 4]
    # The short lists ran on the fast path (None: SQLAlchemy at each execution), a text kept per length.
    assert [compiled is not None for key, compiled in db._compiled.items() if key[0] is statement] == [True]
    assert len([key for key in db._compiled if isinstance(key[0], tuple) and key[0][0] is statement]) == 4
    with db.reading() as c:
        assert c.execute(by_langs_and_state, {"langs": ["fr", "de"]}).scalars() == [2, 4]
        assert c.execute(by_langs, {"langs": ["fr", "de"]}).scalars() == [2, 3, 4]


def _flushing(c) -> str:
    if c.connection.dialect.name == "sqlite":
        return str(c.connection.exec_driver_sql("PRAGMA synchronous").scalar())
    return str(c.connection.exec_driver_sql("SHOW synchronous_commit").scalar())


def test_a_commit_that_may_be_lost_is_not_flushed_alone_and_the_next_one_is(db):
    durable, relaxed = ("2", "1") if db.dialect == "sqlite" else ("on", "off")  # SQLite: FULL, NORMAL
    with db.writing() as c:
        assert _flushing(c) == durable
    with db.writing(durable=False) as c:
        assert _flushing(c) == relaxed
        c.execute(text("update item set state = 'leased' where id = 1"))
    with pytest.raises(RuntimeError), db.writing(durable=False):
        raise RuntimeError("a failed claim")
    with db.writing() as c:  # the setting came back, after a commit and after a rollback
        assert _flushing(c) == durable
    with db.reading() as c:
        assert c.execute(text("select state from item where id = 1")).scalar() == "leased"
