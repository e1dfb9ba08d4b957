"""`ao init`: ao.config.yaml written from a real git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sessions.core.config.init import (
    GitRemote,
    config_init,
    config_init_text,
    git_remote_parse,
    project_key_for,
)
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError
from tests.sessions.test_config import plugins  # noqa: F401 -- the test plugin registry fixture

GIT = shutil.which("git")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [GIT, "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


def make_repo(path: Path, *, remote: str | None = None, branch: str = "main") -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    if remote:
        git(path, "remote", "add", "origin", remote)
    return path


@pytest.fixture
def agent_path(tmp_path, monkeypatch):
    """PATH holding git and a directory of fake agent CLIs (empty until a test adds some)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(Path(GIT).parent)]))

    def install(*names: str) -> None:
        for name in names:
            tool = bin_dir / name
            tool.write_text("#!/bin/sh\nexit 0\n")
            tool.chmod(0o755)

    return install


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/web.git", GitRemote("github.com", "acme", "web")),
        ("https://github.com/acme/web", GitRemote("github.com", "acme", "web")),
        ("https://user:s3cret@github.com/acme/web.git/", GitRemote("github.com", "acme", "web")),
        ("git@github.com:acme/web.git", GitRemote("github.com", "acme", "web")),
        ("ssh://git@github.com:22/acme/web.git", GitRemote("github.com", "acme", "web")),
        ("git@github.acme.corp:platform/api.git", GitRemote("github.acme.corp", "platform", "api")),
        ("https://gitlab.com/acme/web.git", GitRemote("gitlab.com", "acme", "web")),
        ("https://gitlab.com/group/sub/web.git", None),
        ("/srv/git/web.git", None),
        ("../web.git", None),
        ("file:///srv/git/acme/web.git", None),
        ("", None),
    ],
)
def test_remote_urls(url, expected):
    assert git_remote_parse(url) == expected


def test_github_detection():
    assert GitRemote("github.com", "a", "b").is_github
    assert GitRemote("github.acme.corp", "a", "b").is_github
    assert not GitRemote("gitlab.com", "a", "b").is_github
    assert not GitRemote("notgithub.example", "a", "b").is_github


def test_project_keys_from_names():
    assert project_key_for("Web-App") == "web-app"
    assert project_key_for("my.site") == "my-site"
    assert project_key_for("---") == "project"


def test_init_on_a_github_https_repo(plugins, tmp_path, agent_path):  # noqa: F811
    agent_path("codex", "aider")
    repo = make_repo(tmp_path / "checkout", remote="https://github.com/acme/Web-App.git", branch="trunk")

    written = config_init(repo=repo)

    assert written == repo / "ao.config.yaml"
    text = written.read_text()
    assert "    repo: acme/Web-App\n" in text
    assert "    defaultBranch: trunk\n" in text  # the current branch: no origin/HEAD here
    assert "    agent: codex  # agent CLIs found on PATH: codex, aider\n" in text
    config = config_load(written)
    project = config.projects["web-app"]
    assert (project.name, project.repo, project.path, project.session_prefix) == (
        "Web-App",
        "acme/Web-App",
        str(repo),
        "wa",
    )
    assert [project.plugin_key(slot) for slot in ("agent", "runtime", "workspace", "tracker", "scm")] == [
        "codex",
        "tmux",
        "worktree",
        "github",
        "github",
    ]


def test_init_on_an_enterprise_ssh_repo_uses_origin_head(plugins, tmp_path, agent_path):  # noqa: F811
    repo = make_repo(tmp_path / "api", remote="git@github.acme.corp:platform/api.git")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/develop")

    config = config_load(config_init(repo=repo))

    project = config.projects["api"]
    assert (project.repo, project.default_branch) == ("platform/api", "develop")
    assert (project.plugin_key("tracker"), project.plugin_key("scm")) == ("github", "github")
    assert project.plugin_key("agent") == "claude-code"  # nothing on PATH: the default
    assert "# GitHub Enterprise host: github.acme.corp" in (repo / "ao.config.yaml").read_text()
    for slot in ("tracker", "scm"):  # its API, not api.github.com's
        assert project.settings_for(slot)["base_url"] == "https://github.acme.corp/api/v3"


def test_init_without_a_remote_is_local(plugins, tmp_path, agent_path):  # noqa: F811
    repo = make_repo(tmp_path / "Scratch Pad", branch="main")
    (repo / "sub").mkdir()

    written = config_init(repo=repo / "sub")  # anywhere inside the repository

    assert written == repo / "ao.config.yaml"
    assert "repo:" not in written.read_text()
    project = config_load(written).projects["scratch-pad"]
    assert (project.repo, project.default_branch, project.tracker.plugin, project.scm.plugin) == (
        None,
        "main",
        "local",
        "local",
    )


def test_init_on_a_non_github_remote_is_local(plugins, tmp_path, agent_path):  # noqa: F811
    repo = make_repo(tmp_path / "web", remote="https://gitlab.com/acme/web.git")

    project = config_load(config_init(repo=repo)).projects["web"]

    assert (project.repo, project.plugin_key("tracker"), project.plugin_key("scm")) == (
        "acme/web",
        "local",
        "local",
    )


def test_init_refuses_to_overwrite_without_force(tmp_path, agent_path):
    repo = make_repo(tmp_path / "web", remote="git@github.com:acme/web.git")
    existing = repo / "ao.config.yaml"
    existing.write_text("# mine\n")

    with pytest.raises(ConfigError) as caught:
        config_init(repo=repo)

    assert str(caught.value) == f"{existing}: already exists; use --force to replace it"
    assert existing.read_text() == "# mine\n"
    assert config_init(repo=repo, force=True) == existing
    assert "repo: acme/web" in existing.read_text()
    assert sorted(p.name for p in repo.iterdir()) == [".git", "ao.config.yaml"]  # no temp files left


def test_init_outside_a_git_repository(tmp_path, agent_path):
    plain = tmp_path / "plain"
    plain.mkdir()

    with pytest.raises(ConfigError, match="not inside a git repository"):
        config_init(repo=plain)
    assert not (plain / "ao.config.yaml").exists()


def test_the_init_command(tmp_path, agent_path, capsys):
    repo = make_repo(tmp_path / "web", remote="https://github.com/acme/web.git")

    call_command("init", path=repo, print_only=True)
    assert capsys.readouterr().out == config_init_text(repo=repo)
    assert not (repo / "ao.config.yaml").exists()

    call_command("init", path=repo)
    assert capsys.readouterr().out == f"Wrote {repo / 'ao.config.yaml'}. Check it, then run `ao start`.\n"

    with pytest.raises(CommandError, match="already exists; use --force"):
        call_command("init", path=repo)
    call_command("init", path=repo, force=True)

    with pytest.raises(CommandError, match="not inside a git repository"):
        call_command("init", path=tmp_path)


# --- the local SCM's check_command (local CI) ----------------------------------------------------------
PACKAGE_JSON = '{"name": "web", "scripts": {"test": "vitest run"}}'
NPM_PLACEHOLDER = '{"name": "web", "scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'


def local_repo(path: Path, files: dict[str, str]) -> Path:
    repo = make_repo(path)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return repo


@pytest.mark.parametrize(
    ("files", "command", "source"),
    [
        (
            {"Makefile": ".PHONY: test\ntest: build\n\tpytest -q\n"},
            ["make", "test"],
            "the test target of Makefile",
        ),
        ({"Makefile": "lint test:\n\truff check .\n"}, ["make", "test"], "the test target of Makefile"),
        ({"package.json": PACKAGE_JSON}, ["npm", "test"], "the test script of package.json"),
        (
            {"package.json": PACKAGE_JSON, "pnpm-lock.yaml": ""},
            ["pnpm", "test"],
            "the test script of package.json",
        ),
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"},
            ["pytest"],
            "pytest (pyproject.toml)",
        ),
        (
            {"pyproject.toml": "[project]\nname = 'w'\n", "tests/unit/test_w.py": ""},
            ["pytest"],
            "pytest (a tests directory)",
        ),
        # the order: a Makefile's test target, then package.json, then pytest
        (
            {"Makefile": "test:\n\tnpm test && pytest\n", "package.json": PACKAGE_JSON, "pytest.ini": ""},
            ["make", "test"],
            "the test target of Makefile",
        ),
        (
            {"package.json": PACKAGE_JSON, "pytest.ini": ""},
            ["npm", "test"],
            "the test script of package.json",
        ),
        # what is not a test command: another target, make's variable named test, npm's placeholder
        ({"Makefile": "build:\n\tcc x.c\ntest := 1\n", "pytest.ini": ""}, ["pytest"], "pytest (pytest.ini)"),
        ({"package.json": NPM_PLACEHOLDER, "tests/test_w.py": ""}, ["pytest"], "pytest (a tests directory)"),
        # tests written for unittest (and none for pytest) run with the standard library's runner
        (
            {"test_calc.py": "import unittest\n\nclass T(unittest.TestCase):\n    pass\n"},
            ["python3", "-m", "unittest"],
            "unittest (test files at the top level)",
        ),
        (
            {"tests/test_calc.py": "from unittest import TestCase\n", "tests/test_b.py": "import unittest\n"},
            ["python3", "-m", "unittest", "discover", "-s", "tests"],
            "unittest (a tests directory)",
        ),
        (
            {"tests/test_calc.py": "import unittest\n", "tests/test_b.py": "import pytest\n"},
            ["pytest"],
            "pytest (a tests directory)",
        ),
        (
            {"calc_test.py": "def test_add():\n    assert 1 + 1 == 2\n"},
            ["pytest"],
            "pytest (test files at the top level)",
        ),
    ],
)
def test_init_writes_the_repositorys_test_command_as_local_ci(tmp_path, agent_path, files, command, source):
    repo = local_repo(tmp_path / "web", files)

    written = config_init(repo=repo)

    text = written.read_text()
    assert f"      check_command: [{', '.join(command)}]\n" in text
    assert f"Found: {source}." in text
    project = config_load(written).projects["web"]  # ao's real local SCM takes it
    assert project.plugin_key("scm") == "local"
    assert project.settings_for("scm") == {"check_command": command}


@pytest.mark.parametrize(
    "files",
    [{}, {"package.json": NPM_PLACEHOLDER}, {"Makefile": "all:\n\tcc x.c\n"}, {"tests/helpers.py": ""}],
)
def test_init_without_a_test_command_explains_check_command(tmp_path, agent_path, files):
    repo = local_repo(tmp_path / "web", files)

    written = config_init(repo=repo)

    text = written.read_text()
    assert "No test command found. Set check_command" in text
    assert "      # check_command: [pytest, -q]\n" in text
    assert "requiredChecks: []" in text
    project = config_load(written).projects["web"]
    assert (project.plugin_key("scm"), project.settings_for("scm")) == ("local", {})


def test_init_for_github_writes_no_check_command(tmp_path, agent_path):
    repo = local_repo(tmp_path / "web", {"Makefile": "test:\n\tpytest\n"})
    git(repo, "remote", "add", "origin", "https://github.com/acme/web.git")

    text = config_init(repo=repo).read_text()

    assert "    scm: github\n" in text
    assert "check_command" not in text  # GitHub's own CI reports the checks


def test_ao_init_as_a_person_runs_it(tmp_path):
    from tests.test_embedded import ao_env, run_ao

    repo = local_repo(tmp_path / "shop", {"package.json": PACKAGE_JSON})

    done = run_ao(["init"], ao_env(tmp_path / "home"), cwd=repo)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Wrote {repo / 'ao.config.yaml'}. Check it, then run `ao start`.\n"
    assert "      check_command: [npm, test]\n" in (repo / "ao.config.yaml").read_text()
    check = run_ao(["config", "check"], ao_env(tmp_path / "home"), cwd=repo)
    assert (check.returncode, check.stdout) == (0, f"{repo / 'ao.config.yaml'}: OK (1 projects)\n"), (
        check.stderr
    )
