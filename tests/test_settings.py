"""Settings come from the environment: embedded defaults, PostgreSQL/Redis, production hardening."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.helpers.procs import manage

PRINT = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'db': s.DATABASES['default']['ENGINE'], 'db_name': str(s.DATABASES['default']['NAME']),"
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'broker': s.CELERY_BROKER_URL,"
    "'embedded': s.AO_EMBEDDED, 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'debug': s.DEBUG,"
    "'hosts': s.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts')}))"
)


def settings_in(env: dict[str, str]) -> dict:
    out = manage("shell", "-c", PRINT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_embedded_defaults_live_in_ao_home(tmp_path):
    home = tmp_path / "home"
    env = {"AO_HOME": str(home), "AO_SECRET_KEY": "", "DATABASE_URL": "", "REDIS_URL": ""}
    found = settings_in(env)
    assert found["db"] == "ao_site.sqlite3"
    assert found["db_name"] == str(home / "ao.sqlite3")
    assert found["layer"] == "channels.layers.InMemoryChannelLayer"
    assert found["broker"].startswith("memory://")
    assert found["embedded"] is True and found["debug"] is False
    # the secret key is generated once, kept with mode 0600 and reused
    key_file = home / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    first = key_file.read_text()
    settings_in(env)
    assert key_file.read_text() == first and len(first.strip()) >= 50


def test_ao_files_are_private_in_an_ao_home_open_to_others(tmp_path):
    """An AO_HOME that existed before ao (mode 0755) and a umask of 022: the database (and its
    WAL files) and the secret key are still 0600, an old key left readable is made 0600, and
    `ao doctor` warns about the directory without changing it (every other command stays quiet:
    agents run `ao report` with the same AO_HOME)."""
    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o755)
    key_file = home / "secret_key"
    key_file.write_text("k" * 60 + "\n")
    key_file.chmod(0o644)
    env = {"AO_HOME": str(home), "AO_SECRET_KEY": "", "DATABASE_URL": "", "REDIS_URL": ""}
    old_umask = os.umask(0o022)
    try:
        result = manage("shell", "-c", "from django.db import connection; connection.cursor()", env=env)
    finally:
        os.umask(old_umask)

    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in home.iterdir() if path.is_file()}
    assert "ao.sqlite3" in modes and "secret_key" in modes
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}
    assert key_file.read_text() == "k" * 60 + "\n"
    assert "open to other users" not in result.stderr
    manage("migrate", "-v0", env=env)
    doctor = manage("doctor", env=env, check=False)
    assert f"AO_HOME {home} is open to other users (mode 755)" in doctor.stdout + doctor.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


def test_database_and_redis_urls_switch_backends(tmp_path):
    env = {
        "AO_HOME": str(tmp_path),
        "DATABASE_URL": "postgres://ao@db.example:5432/ao",
        "REDIS_URL": "redis://cache.example:6379/2",
    }
    found = settings_in(env)
    assert found["db"] == "django.db.backends.postgresql"
    assert found["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert found["broker"] == "redis://cache.example:6379/2"
    assert found["embedded"] is False and found["eager"] is False
    # idle pub/sub connections must not hit redis-py's default 5 s socket timeout
    (host,) = found["hosts"]
    assert host["socket_timeout"] is None and host["socket_keepalive"] is True


def test_with_redis_every_process_shares_one_cache(tmp_path, redis_url):
    """API throttling per token and the drift watch's "due" marks count across web and worker processes."""
    env = {"AO_HOME": str(tmp_path), "REDIS_URL": redis_url, "AO_CHANNEL_PREFIX": f"ao-test-{os.getpid()}"}
    key = f"shared-{os.urandom(4).hex()}"
    manage("shell", "-c", f"from django.core.cache import cache; cache.set({key!r}, 'from-one', 30)", env=env)
    out = manage(
        "shell", "-c", f"from django.core.cache import cache; print(cache.get({key!r}))", env=env
    ).stdout
    assert out.strip().splitlines()[-1] == "from-one"


def test_check_deploy_is_clean_in_production(tmp_path):
    env = {
        "AO_HOME": str(tmp_path),
        "AO_ENV": "production",
        "AO_SECRET_KEY": os.urandom(40).hex(),
        "AO_URL": "https://ao.example.com",
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_an_unknown_ao_env_is_refused(tmp_path):
    result = manage("check", env={"AO_HOME": str(tmp_path), "AO_ENV": "staging"}, check=False)
    assert result.returncode != 0
    assert "AO_ENV must be 'development' or 'production'" in result.stderr


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("url https://hooks.slack.com/services/T000/B000/XXXXYYYY", "T000/B000/XXXXYYYY"),
        ("Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"),
        ("key lin_api_0123456789abcdefghijABCDEFGHIJ", "lin_api_0123456789abcdefghijABCDEFGHIJ"),
        (
            "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ",
        ),
    ],
)
def test_tokens_never_reach_the_log(text, hidden):
    import logging

    from ao_site.logredact import RedactSecretsFilter

    record = logging.LogRecord("ao", logging.INFO, __file__, 1, "sending %s", (text,), None)
    RedactSecretsFilter().filter(record)
    assert hidden not in record.getMessage()
    assert "[redacted]" in record.getMessage()


@pytest.mark.parametrize(
    ("machine", "host"), [("build-1.example.com", "build-1"), ("vm", "vm"), ("under_score!", "localhost")]
)
def test_sessions_and_workers_name_this_host_the_same_way(monkeypatch, machine, host):
    """A session records settings.AO_HOST_NAME; `ao worker` without --host consumes host.<that>."""
    import socket

    from ao_site import hosts, runner

    monkeypatch.setattr(socket, "gethostname", lambda: machine)
    monkeypatch.delenv("AO_HOST_NAME", raising=False)
    assert hosts.machine_host_name() == host
    monkeypatch.setattr(runner.settings, "AO_HOST_NAME", hosts.machine_host_name())
    assert runner.default_host_name() == host


LEASES = (
    "import json; from sessions.agents import spawning; from sessions.agents import messaging; from sessions.core import services; print(json.dumps(["
    "messaging.CLAIM_LEASE.total_seconds(), services.SWEEP_LEASE.total_seconds(),"
    "services.SWEEP_LEASE_RENEW_AFTER.total_seconds(), spawning.START_RETRY_AFTER.total_seconds()]))"
)


def test_the_leases_on_work_a_dead_process_held_default_to_30_45_60_s_and_come_from_the_environment(tmp_path):
    base = {"AO_HOME": str(tmp_path / "home"), "DATABASE_URL": "", "REDIS_URL": ""}
    found = json.loads(manage("shell", "-c", LEASES, env=base).stdout.strip().splitlines()[-1])
    assert found == [30.0, 45.0, 15.0, 60.0]  # claim, sweep (renewed every 15 s), start retry

    short = {"AO_MESSAGE_CLAIM_LEASE": "4", "AO_SWEEP_LEASE": "6", "AO_START_RETRY_AFTER": "5"}
    found = json.loads(manage("shell", "-c", LEASES, env={**base, **short}).stdout.strip().splitlines()[-1])
    assert found == [4.0, 6.0, 2.0, 5.0]

    refused = manage("check", env={**base, "AO_SWEEP_LEASE": "0"}, check=False)
    assert refused.returncode != 0 and "AO_SWEEP_LEASE must be more than 0" in refused.stderr
