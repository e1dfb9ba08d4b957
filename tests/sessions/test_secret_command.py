"""`ao secret set/ls/rm`: the value comes from stdin (never argv), and nothing prints it back."""

from __future__ import annotations

import json
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sessions.core import secrets
from sessions.models import AuditEntry, Secret
from tests.test_embedded import REPO_ROOT, ao_command, ao_env, django_shell

VALUE = "ghp_" + "s3cr3t" * 6


def ao_secret(*args: str, stdin: str = "") -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("secret", *args, stdin=StringIO(stdin), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_set_reads_the_value_from_stdin_stores_it_encrypted_and_never_prints_it():
    out, err = ao_secret("set", "github-prod", stdin=VALUE + "\n")

    assert out.strip() == "secret github-prod stored"
    assert VALUE not in out + err
    assert secrets.secret_value("github-prod") == VALUE  # one trailing newline dropped
    assert VALUE not in Secret.objects.get(name="github-prod").ciphertext
    assert AuditEntry.objects.filter(action="secret.create", source="cli").count() == 1

    out, err = ao_secret("set", "github-prod", stdin="ghp_replaced\r\n")

    assert out.strip() == "secret github-prod replaced"
    assert secrets.secret_value("github-prod") == "ghp_replaced"
    assert AuditEntry.objects.filter(action="secret.replace", source="cli").count() == 1


@pytest.mark.django_db
def test_set_refuses_an_empty_value_and_a_bad_name():
    with pytest.raises(CommandError, match="no value for secret 'github-prod'"):
        ao_secret("set", "github-prod", stdin="\n")
    with pytest.raises(CommandError, match="not a secret name"):
        ao_secret("set", "github prod", stdin=VALUE)
    with pytest.raises(CommandError, match="1 to 16384 characters") as caught:
        ao_secret("set", "big", stdin="x" * 20_000)
    assert "xxxx" not in str(caught.value)
    assert not Secret.objects.exists()


@pytest.mark.django_db
def test_ls_shows_names_and_times_only_and_rm_deletes():
    ao_secret("set", "slack-team", stdin="https://hooks.slack.com/services/T0/B0/" + VALUE)
    ao_secret("set", "github-prod", stdin=VALUE)

    out, _ = ao_secret("ls")
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "github-prod", "slack-team"]
    assert VALUE not in out and "hooks.slack.com" not in out
    rows = json.loads(ao_secret("ls", "--json")[0])
    assert [set(row) for row in rows] == [{"name", "updated_at"}] * 2

    out, _ = ao_secret("rm", "github-prod")
    assert out.strip() == "secret github-prod deleted"
    assert list(Secret.objects.values_list("name", flat=True)) == ["slack-team"]
    assert AuditEntry.objects.filter(action="secret.delete", source="cli").count() == 1
    with pytest.raises(CommandError, match="no secret 'github-prod'"):
        ao_secret("rm", "github-prod")


@pytest.mark.django_db
def test_ls_with_no_secrets_says_how_to_add_one():
    assert "ao secret set NAME" in ao_secret("ls")[0]


@pytest.mark.slow
def test_the_ao_command_reads_a_piped_value(tmp_path: Path):
    env = ao_env(tmp_path)
    django_shell(env, "from django.core.management import call_command\ncall_command('migrate', verbosity=0)")

    stored = subprocess.run(
        [*ao_command(), "secret", "set", "github-prod"],
        input=VALUE + "\n",
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = subprocess.run(
        [*ao_command(), "secret", "ls"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )

    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == "secret github-prod stored"
    assert "github-prod" in listed.stdout
    assert VALUE not in stored.stdout + stored.stderr + listed.stdout + listed.stderr
    check = (
        "from sessions.core.secrets import secret_value\nprint(secret_value('github-prod') == "
        + repr(VALUE)
        + ")"
    )
    assert django_shell(env, check).strip() == "True"
