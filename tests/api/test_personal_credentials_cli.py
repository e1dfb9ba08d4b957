"""`ao secret set --mine` against a live ao: a person stores their own model key over the API."""

from __future__ import annotations

import subprocess

import pytest

from sessions.core import secrets
from sessions.models import AuditEntry, PersonalSecret
from tests.test_embedded import REPO_ROOT, ao_command, ao_env

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

KEY = "sk-ant-api03-operator-9999999999999999999999999999"


def test_ao_secret_mine_stores_lists_and_deletes_over_the_api(
    transactional_db, live_server, world, tmp_path
) -> None:
    env = ao_env(tmp_path, AO_URL=live_server.url, AO_TOKEN=world.tokens["operator"])

    def ao(*args: str, value: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*ao_command(), "secret", *args],
            env=env,
            cwd=REPO_ROOT,
            input=value,
            capture_output=True,
            text=True,
            timeout=60,
        )

    stored = ao("set", "--mine", "ANTHROPIC_API_KEY", value=KEY + "\n")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == "ANTHROPIC_API_KEY stored (yours)"
    row = PersonalSecret.objects.get()
    assert row.user == world.users["operator"] and row.name == "ANTHROPIC_API_KEY"
    assert secrets.decrypt(row.ciphertext) == KEY
    assert ao("set", "--mine", "ANTHROPIC_API_KEY", value="other\n").stdout.strip() == (
        "ANTHROPIC_API_KEY replaced (yours)"
    )

    listed = ao("ls", "--mine")
    assert "ANTHROPIC_API_KEY" in listed.stdout and KEY not in listed.stdout + listed.stderr
    refused = ao("set", "--mine", "PATH", value="/tmp\n")
    assert refused.returncode != 0 and "not a personal credential's name" in refused.stderr
    # the project's secrets stay the host's: without --mine the command refuses in remote mode
    host_only = ao("set", "team-key", value="x\n")
    assert host_only.returncode == 1 and "works on the ao host only" in host_only.stderr

    assert ao("rm", "--mine", "ANTHROPIC_API_KEY").stdout.strip() == "ANTHROPIC_API_KEY deleted (yours)"
    assert not PersonalSecret.objects.exists()
    actions = list(
        AuditEntry.objects.order_by("pk").values_list("action", "target_id", "actor_user__username")
    )
    assert actions == [
        ("personal_secret.create", "operator/ANTHROPIC_API_KEY", "operator"),
        ("personal_secret.replace", "operator/ANTHROPIC_API_KEY", "operator"),
        ("personal_secret.delete", "operator/ANTHROPIC_API_KEY", "operator"),
    ]
