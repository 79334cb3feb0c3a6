"""Server settings on pydantic-settings: the same variable names, `.env` below the environment,
comma-separated lists, and one line naming the variable when a value is wrong."""

import pytest

from server.auth import Role
from server.ledger import SchedulerKind
from server.ops.notify import NotifyEvent
from server.settings import Settings, SettingsError


def test_dotenv_then_environment_then_lists(tmp_path, monkeypatch):
    (tmp_path / "audio").mkdir()
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AUDIO_DIR={tmp_path / 'audio'}\nPORT=7000\nWORKERS=2\nNOTIFY_URLS=\n")
    monkeypatch.setenv("WORKERS", "3")
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", " Hooks.Local , 10.0.0.5 ")
    monkeypatch.setenv("AUTH_TOKENS", "laptop:0123456789abcdef,gpu:fedcba9876543210,ci:abcdefabcdef0123:submitter")
    s = Settings.from_env(dotenv_path=str(dotenv))
    assert (s.port, s.workers, s.notify_urls) == (7000, 3, ())
    assert s.callback_allowed_hosts == frozenset({"hooks.local", "10.0.0.5"})
    assert s.auth_tokens == {
        "0123456789abcdef": ("laptop", Role.VOLUNTEER),  # a client's, unless it says otherwise
        "fedcba9876543210": ("gpu", Role.VOLUNTEER),
        "abcdefabcdef0123": ("ci", Role.SUBMITTER),
    }
    assert s.results_dir == s.data_dir / "results" and not s.beside_audio
    assert s.database_url == f"sqlite:///{s.data_dir / 'batch-stt.db'}"


def test_beside_audio_and_choices(tmp_path):
    env = {"AUDIO_DIR": str(tmp_path), "RESULTS_BESIDE_AUDIO": "yes", "SCHEDULER": "FIFO",
           "RESULT_FORMATS": "VTT, txt", "NOTIFY_EVENTS": "task.failed"}  # fmt: skip
    s = Settings.from_env(env, dotenv_path=None)
    assert s.results_dir == tmp_path and s.beside_audio and s.results.beside_audio
    assert s.scheduler == SchedulerKind.FIFO and s.result_formats == ("vtt", "txt")
    assert s.notify_events == frozenset({NotifyEvent.TASK_FAILED})


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("AUDIO_DIR", "", "AUDIO_DIR is not set"),
        ("LEASE_SECONDS", "2", "LEASE_SECONDS='2' must be at least 5"),
        ("SCAN_INTERVAL", "soon", "SCAN_INTERVAL='soon' is not a number"),
        ("REQUIRE_SIDECAR", "perhaps", "REQUIRE_SIDECAR='perhaps' must be true or false"),
        ("NOTIFY_EVENTS", "task.failed,nope", "NOTIFY_EVENTS='task.failed,nope': a comma-separated choice of"),
        ("AUTH_TOKENS", "bob:short", "AUTH_TOKENS must be 'name:token[:role]' items"),
        ("AUTH_TOKENS", "bob:0123456789abcdef:root", "unknown role 'root'"),
        ("CALLBACK_ALLOW_PRIVATE", "lan", "CALLBACK_ALLOW_PRIVATE='lan' must be true or false"),
        ("SPLIT_SECONDS", "10", "SPLIT_SECONDS=10 must be 0 (off) or at least 30"),
        ("CHECK_SECONDS", "20", "CHECK_SECONDS=20 must be 0 (whole checks) or at least 30"),
        ("REPLICA_BUDGET", "2", "is a share of the library"),
        ("SQLITE_SYNCHRONOUS", "off", "SQLITE_SYNCHRONOUS='OFF' must be FULL, EXTRA or NORMAL"),
    ],
)
def test_a_wrong_value_is_one_line_naming_it(tmp_path, name, value, message):
    env = {"AUDIO_DIR": str(tmp_path), name: value}
    with pytest.raises(SettingsError) as e:
        Settings.from_env(env, dotenv_path=None)
    assert message in str(e.value) and "\n" not in str(e.value)
