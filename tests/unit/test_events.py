"""Event names are members of one Enum: an emit or a listener that spells one by hand fails here."""

import ast
from pathlib import Path

import pytest

from server.ledger import Event, EventLog, Ledger
from server.ops import alerts
from server.ops.metrics import Metrics

SERVER = Path(__file__).resolve().parents[2] / "server"


def _event_args(node: ast.expr) -> list[ast.expr]:
    """The leaves of `Event.A if x else Event.B`."""
    if isinstance(node, ast.IfExp):
        return _event_args(node.body) + _event_args(node.orelse)
    return [node]


def test_every_emit_names_a_member():
    calls = 0
    for path in SERVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit":
                calls += 1
                for arg in _event_args(node.args[0]):
                    where = f"{path.relative_to(SERVER)}:{node.lineno}"
                    assert isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name), where
                    assert arg.value.id == "Event" and arg.attr in Event.__members__, where
    assert calls >= len(Event) - 2  # the conditional emits name two members each


def test_a_name_that_is_no_member_is_refused_at_emit():
    log = EventLog(stream=None)
    heard = []
    log.subscribe(lambda event, record: heard.append((event, record["event"])))
    log.emit(Event.GRANTED, task="t")
    with pytest.raises(ValueError):
        log.emit("grantd", task="t")  # type: ignore[arg-type]
    assert heard == [(Event.GRANTED, "granted")]


def test_listeners_match_on_members(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'db'}", lease_seconds=60, legacy_lease_seconds=60,
                         max_attempts=3, events=EventLog(stream=None))  # fmt: skip
    assert all(isinstance(e, Event) for e in Metrics(ledger)._on)
    assert all(isinstance(e, Event) for e in alerts._JOB_ENDS | alerts._FINISHING)
    ledger.db.dispose()
