"""A team's first hour with ao, end to end, as people really run it (issue 11 §1).

One module-scoped world (``world.py``): the person's own repository, ``ao start --port N`` run
from inside it, a private tmux server for the agents, headless Chromium. Each test is one step
of the journey, in order (one module, so ``--dist loadfile`` keeps them on one worker); later
steps build on what earlier ones did (``world.facts``) and fail at once, saying so, when an
earlier step did not get that far. A step that fails because of a known product defect is
marked ``defect(...)`` (a strict xfail naming it), so the suite stays green while the defect is
open and fails the moment it is fixed, to have the marker dropped.

The journey: ao starts in the repo (the keys the person set are documented) → a local issue, a
project applied by mistake from another repository, a missing issue and a bad flag → spawn (a
browser terminal watches the agent from here on) → the agent reports and opens its PR (and its
push to origin works) → local CI fails → the failure with its log reaches the agent → the agent
fixes → CI green, live on the open session page → the board asks a person for the review → a
person requests changes on the dashboard → the comment reaches the agent → fix → approve →
merge from the dashboard → ``ao session cleanup`` → the person's repository gets the merged
commit with the command the README gives → a second spawn starts from the merged code (and the
merged issue spawned again does not adopt its merged PR) → kill from the CLI, followed by the
open pages → restore → ``ao send`` to a killed session → no terminal reply ever reached an
agent's input → a superuser deletes the stray project in the admin.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.browser import require_browser
from tests.journey.world import World, configure, git, journey_world, login, make_user_repo, start_ao

pytestmark = pytest.mark.slow

ISSUE_1 = "Add mul(a, b) to calc"
ISSUE_2 = "Add sub(a, b) to calc"
REVIEW_COMMENT = "Please give mul a docstring."
DOCSTRING = '"""The product of a and b."""'
README = Path(__file__).resolve().parents[2] / "README.md"


def defect(number: int, what: str, *, issue: int = 11):
    """A step that fails because of a known, open product defect."""
    return pytest.mark.xfail(strict=True, reason=f"issue {issue} defect {number}: {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    require_browser()
    with journey_world(tmp_path_factory.mktemp("journey")) as running:
        yield running


def need(world: World, *keys: str) -> list:
    missing = [key for key in keys if key not in world.facts]
    if missing:
        pytest.fail(f"an earlier step did not get this far (no {', '.join(missing)})", pytrace=False)
    return [world.facts[key] for key in keys]


def sid1(world: World) -> str:
    return f"{world.prefix}-1"


def sid2(world: World) -> str:
    return f"{world.prefix}-2"


def to_board(page) -> None:
    page.locator("a.brand").click()
    page.wait_for_load_state()


def open_session_page(page, session_id: str) -> None:
    """From the board, click the session's card, as a person does."""
    to_board(page)
    page.locator(f"#card-{session_id} a.sid").click()
    page.wait_for_url(f"**/s/{session_id}/")


def terminal_text(page, session_id: str) -> str:
    return page.locator(f"#terminal-{session_id} .xterm-rows").inner_text()


def terminal_status(page, session_id: str) -> str:
    return page.locator(f"#terminal-{session_id} [data-role=status]").inner_text()


def timeline(page) -> str:
    return page.locator("#timeline").inner_text()


def managed_remote(world: World) -> Path:
    """The bare repository ao merges into: the checkout's origin once ao has added it (README),
    <AO_HOME>/remotes/<project>.git where ao keeps it (docs/CONFIG.md)."""
    origin = git(world.repo, "remote", "get-url", "origin", check=False).strip()
    return Path(origin) if origin else world.home / "remotes" / f"{world.project}.git"


def head_of(workspace: Path) -> str:
    return git(workspace, "rev-parse", "HEAD").strip()


def last_subject(workspace: Path) -> str:
    return git(workspace, "log", "-1", "--format=%s").strip()


# --- 1. ao starts in the person's repository ------------------------------------------------------------
def test_01_ao_start_in_the_repository_serves_on_the_chosen_port(world: World) -> None:
    world.facts["init_wrote"] = configure(world)  # `ao init`, then the person names their agent and tests
    start_ao(world)

    out = world.process.output
    assert f"Dashboard: http://127.0.0.1:{world.port}/" in out
    assert f"Config: {world.repo / 'ao.config.yaml'}" in out
    assert f"created project {world.project}" in out
    login(world)  # the link `ao login-link` prints, opened in the browser
    assert world.page.url == f"{world.base}/", world.page.url
    world.token = re.search(r"\bao_\S+", world.ao_ok("token", "create", "journey")).group(0)
    me = world.api("me")
    assert me.status_code == 200 and me.json()["username"] == "admin", me.text


# --- 1b. every key the person set is documented -------------------------------------------------------------
def test_01b_the_settings_the_person_needs_are_written_or_hinted_and_in_the_schema(world: World) -> None:
    (written,) = need(world, "init_wrote")
    assert "check_command" in written, written  # `ao init` writes the test command or a hint

    world.ao_ok("config", "check")
    schema = world.ao_ok("config", "schema")
    for key in ("check_command", "check_name", "command", "prompt_mode", "ready_pattern"):
        assert f'"{key}"' in schema, f"{key} is not in `ao config schema`"


# --- 2. a local issue ------------------------------------------------------------------------------------
def test_02_a_person_adds_a_local_issue(world: World) -> None:
    out = world.ao_ok("issue", "add", ISSUE_1)

    assert f"created #1: {ISSUE_1}" in out
    assert ISSUE_1 in world.ao_ok("issue", "ls")
    issues = world.api(f"projects/{world.project}/issues/").json()
    assert [(i["ref"], i["title"], i["state"], i["session"]) for i in issues] == [
        ("1", ISSUE_1, "open", None)
    ]


# --- 2b. a person's mistakes: a stray project, an issue that does not exist, a bad flag -------------------
def test_02b_a_stray_project_and_a_missing_issue_get_in_nobodys_way(world: World) -> None:
    stray = make_user_repo(world.root / "notes")
    world.ao_ok("init", cwd=stray)
    world.ao_ok("config", "apply", cwd=stray)  # by mistake: now ao has two projects
    world.facts["stray"] = stray.name
    assert stray.name in world.ao_ok("status")

    # Inside the calc repository every command still knows its project.
    assert ISSUE_1 in world.ao_ok("issue", "ls")
    missing = world.ao("spawn", "99999")
    assert missing.returncode != 0 and "99999" in missing.stderr, missing.stdout + missing.stderr
    assert world.api("sessions/?kind=worker").json()["results"] == []  # nothing was started


def test_02c_a_bad_flag_prints_the_usage_line_and_the_error_only(world: World) -> None:
    bad_flag = world.ao("spawn", "--no-such-flag")

    assert bad_flag.returncode == 2 and bad_flag.stdout == ""
    usage, error = bad_flag.stderr.strip().splitlines()  # exactly two lines
    assert usage.startswith("usage: ao spawn ") and "--no-such-flag" in error, bad_flag.stderr


# --- 3. spawn; a browser terminal watches the agent from here on ----------------------------------------
def test_03_spawn_starts_the_agent_in_its_worktree_and_a_browser_terminal_watches_it(world: World) -> None:
    out = world.ao_ok("spawn", "1")

    sid = sid1(world)
    match = re.search(r"workspace: (\S+) \(branch (\S+)\)", out)
    assert out.startswith(f"{sid}:") and match, out
    workspace, branch = Path(match.group(1)), match.group(2)
    world.facts.update(workspace1=workspace, branch1=branch)
    assert git(workspace, "branch", "--show-current").strip() == branch
    assert (workspace / "calc" / "__init__.py").is_file()
    world.wait("the agent's prompt in its pane", lambda: "journey-agent>" in world.pane(sid), session=sid)
    assert sid in world.tmux_sessions()  # on ao's own tmux server (the test's private TMUX_TMPDIR)
    to_board(world.page)
    world.wait("the new card on the board", lambda: world.card_zone(sid), session=sid)

    # A tab left open on the session page for the whole journey, and the person's own look at it:
    # two viewers of the same terminal.
    tab = world.new_tab()
    tab.goto(world.base + "/")
    open_session_page(tab, sid)
    world.terminals[sid] = tab
    world.wait("the browser terminal live", lambda: terminal_status(tab, sid) == "live", session=sid)
    world.wait("the agent's screen in it", lambda: "journey-agent>" in terminal_text(tab, sid), session=sid)
    open_session_page(world.page, sid)
    world.wait(
        "the person's view of it", lambda: "journey-agent>" in terminal_text(world.page, sid), session=sid
    )


# --- 4. the agent reports and opens its PR through ao -----------------------------------------------------
def test_04_the_agent_reports_and_opens_its_pr_through_ao(world: World) -> None:
    sid = sid1(world)
    world.wait(
        "`ao report working` to work in the agent", lambda: "reported working" in world.pane(sid), session=sid
    )
    world.wait(
        "the agent's `ao pr create` to give PR #1",
        lambda: re.search(r"(opened|updated) PR #1 for ", world.pane(sid)),
        session=sid,
    )
    pr = world.wait("PR #1 on the session", lambda: world.session_facts(sid)["pull_request"], session=sid)
    assert (pr["number"], pr["title"], pr["branch"]) == (1, "Add mul(a, b)", world.facts["branch1"]), pr
    world.facts["pr"] = 1


# --- 5. what ao tells the agent works as written in its worktree ------------------------------------------
def test_05_the_agents_push_to_origin_works_in_its_worktree(world: World) -> None:
    sid = sid1(world)
    world.wait("the agent's first push", lambda: "push to origin:" in world.pane(sid), session=sid)
    pane = world.pane(sid)
    assert "push to origin: ok" in pane and "push to origin: FAILED" not in pane, pane
    remote = git(world.facts["workspace1"], "remote", "get-url", "origin").strip()
    assert Path(remote).is_dir() and git(Path(remote), "rev-parse", "--is-bare-repository").strip() == "true"


# --- 6. local CI fails, and the failure with its log excerpt reaches the agent ---------------------------
def test_06_local_ci_fails_and_the_failure_with_its_log_reaches_the_agent(world: World) -> None:
    (pr,) = need(world, "pr")
    sid = sid1(world)
    world.wait(
        "the CI failure's log excerpt in the agent's pane",
        lambda: "ci says: AssertionError: 5 != 6" in world.pane(sid),
        timeout=40,
        session=sid,
    )
    ci_message = next(m for m in world.received(sid) if "CI is failing" in m)
    assert f"CI is failing on PR #{pr}" in ci_message
    assert "FAIL: test_mul" in ci_message and "AssertionError: 5 != 6" in ci_message
    open_session_page(world.page, sid)
    world.wait(
        "the failure and its hand-off on the timeline",
        lambda: (
            "CI failing: unit" in timeline(world.page)
            and "ci-failed: message sent to the agent" in timeline(world.page)
        ),
        session=sid,
    )


# --- 7. the agent fixes it; CI goes green ------------------------------------------------------------------
def test_07_the_agent_fixes_it_and_ci_turns_green(world: World) -> None:
    need(world, "pr")
    sid = sid1(world)
    workspace = world.facts["workspace1"]
    world.wait(
        "the agent's fix committed", lambda: last_subject(workspace) == "Fix mul: multiply", session=sid
    )
    head = head_of(workspace)

    def green() -> bool:
        pr = world.session_facts(sid)["pull_request"]
        return pr["head_sha"] == head and [(c["name"], c["conclusion"]) for c in pr["checks"]] == [
            ("unit", "success")
        ]

    world.wait("CI (unit) green on the fixed head", green, timeout=40, session=sid)
    # The session page the person left open at the failure follows, without a reload.
    panel = world.page.locator("#pr-panel")
    world.wait(
        "the session page's PR panel saying CI passing",
        lambda: "failing" not in panel.inner_text().lower() and "passing" in panel.inner_text().lower(),
        session=sid,
    )
    to_board(world.page)
    card = world.page.locator(f"#card-{sid}")
    world.wait("the card saying CI passing", lambda: "CI passing" in card.inner_text(), session=sid)
    assert "return a * b" in (workspace / "calc" / "__init__.py").read_text()


# --- 8. a PR waiting for a person's review asks for one --------------------------------------------------
def test_08_a_pr_waiting_for_review_asks_a_person_for_it(world: World) -> None:
    need(world, "pr")
    sid = sid1(world)
    card = world.page.locator(f"#card-{sid}")
    world.wait("the card saying review needed", lambda: "review needed" in card.inner_text(), session=sid)
    assert world.card_zone(sid) == "review"  # "Review requested": a person acts next
    needs_you = world.page.locator("#needs-you")
    world.wait("the board's 'Needs you' naming it", lambda: sid in needs_you.inner_text(), session=sid)


# --- 9. changes requested on the dashboard reach the agent, which fixes them -----------------------------
def test_09_changes_requested_on_the_dashboard_reach_the_agent(world: World) -> None:
    need(world, "pr")
    sid = sid1(world)
    page = world.page
    open_session_page(page, sid)
    page.locator("#id_review_body").fill(REVIEW_COMMENT)
    page.locator("#review-form button[value=request_changes]").click()
    world.wait(
        "the review on the PR panel",
        lambda: "changes requested by admin" in page.locator("#pr-panel").inner_text(),
        session=sid,
    )

    world.wait(
        "the reviewer's comment in the agent's pane",
        lambda: f"reviewer says: {REVIEW_COMMENT}" in world.pane(sid),
        timeout=40,
        session=sid,
    )
    workspace = world.facts["workspace1"]
    world.wait("the agent's change committed", lambda: last_subject(workspace) == "Document mul", session=sid)
    head = head_of(workspace)
    world.wait(
        "the change pushed to the PR",
        lambda: world.session_facts(sid)["pull_request"]["head_sha"] == head,
        session=sid,
    )
    assert DOCSTRING in (workspace / "calc" / "__init__.py").read_text()
    world.wait(
        "the review and its hand-off on the timeline",
        lambda: (
            f"changes requested by admin via the dashboard: {REVIEW_COMMENT}" in timeline(page)
            and "changes-requested: message sent to the agent" in timeline(page)
        ),
        session=sid,
    )


# --- 10. approve, then merge from the dashboard ----------------------------------------------------------
def test_10_approve_and_merge_from_the_dashboard(world: World) -> None:
    (pr,) = need(world, "pr")
    sid = sid1(world)
    page = world.page
    open_session_page(page, sid)
    page.locator("#review-form button[value=approve]").click()
    world.wait(
        "the approval on the PR panel", lambda: "approved by admin" in page.locator("#pr-panel").inner_text()
    )
    # The terminal tab opened at spawn still shows the agent, live, with its latest work.
    tab = world.terminals[sid]
    world.wait("that terminal still live", lambda: terminal_status(tab, sid) == "live", session=sid)
    world.wait(
        "the agent's last commit in that terminal",
        lambda: "Document mul" in terminal_text(tab, sid),
        session=sid,
    )

    to_board(page)
    world.wait(
        "the card in Merge (approved and green)",
        lambda: world.card_zone(sid) == "merge",
        timeout=40,
        session=sid,
    )
    open_session_page(page, sid)
    page.locator("#actions button", has_text=f"Merge #{pr}").click()  # confirms the dialog
    to_board(page)
    world.wait("the card in Done", lambda: world.card_zone(sid) == "done", timeout=30, session=sid)
    assert page.locator(f"#card-{sid}").get_attribute("data-status") == "merged"
    merged = git(managed_remote(world), "show", "main:calc/__init__.py")
    assert DOCSTRING in merged and "return a * b" in merged
    world.facts["merged_sha"] = git(managed_remote(world), "rev-parse", "main").strip()


# --- 11. cleanup removes the merged session's worktree ----------------------------------------------------
def test_11_session_cleanup_removes_the_merged_sessions_worktree(world: World) -> None:
    need(world, "merged_sha")
    sid = sid1(world)
    workspace = world.facts["workspace1"]

    dry = world.ao_ok("session", "cleanup", "--dry-run")
    assert sid in dry and workspace.is_dir(), dry
    out = world.ao_ok("session", "cleanup")

    assert sid in out and "refus" not in out.lower(), out
    assert not workspace.exists(), f"{workspace} is still there after:\n{out}"
    assert sid not in world.tmux_sessions()
    assert sid not in world.ao_ok("session", "ls")  # gone from the live list


# --- 12. the person's checkout gets the merged commit with the README's command -------------------------
def documented_pull() -> str:
    """The command the README gives to bring merged work into your own checkout."""
    text = " ".join(README.read_text().split())
    match = re.search(r"merged work into your (?:own )?checkout[^`]*`(git [^`]+)`", text)
    assert match, "the README gives no command to bring merged work into your checkout"
    return match.group(1)


def test_12_the_users_repo_gets_the_merged_commit_with_the_documented_command(world: World) -> None:
    (sha,) = need(world, "merged_sha")
    command = documented_pull()

    proc = subprocess.run(
        shlex.split(command), cwd=world.repo, env=world.env, capture_output=True, text=True, timeout=60
    )

    assert proc.returncode == 0, f"`{command}` failed:\n{proc.stdout}{proc.stderr}"
    assert head_of(world.repo) == sha
    assert DOCSTRING in (world.repo / "calc" / "__init__.py").read_text()


# --- 13. a second spawn starts from the merged code --------------------------------------------------------
def test_13_a_second_spawn_starts_from_the_merged_code(world: World) -> None:
    world.ao_ok("issue", "add", ISSUE_2)
    out = world.ao_ok("spawn", "2")

    sid = sid2(world)
    workspace = Path(re.search(r"workspace: (\S+) \(branch", out).group(1))
    world.facts["workspace2"] = workspace  # the next steps use this session whatever happens here
    tab = world.new_tab()
    tab.goto(world.base + "/")
    open_session_page(tab, sid)
    world.terminals[sid] = tab
    open_session_page(world.page, sid)
    world.wait("the agent reading its task", lambda: "base has mul:" in world.pane(sid), session=sid)
    need(world, "merged_sha")
    assert DOCSTRING in (workspace / "calc" / "__init__.py").read_text()
    assert "base has mul: yes" in world.pane(sid)


# --- 13b. the same issue spawned again starts fresh work, not the merged PR ------------------------------
def test_13b_spawning_the_merged_issue_again_does_not_adopt_its_merged_pr(world: World) -> None:
    (branch1,) = need(world, "merged_sha", "branch1")[1:]
    out = world.ao("spawn", "1")
    said = out.stdout + out.stderr
    if out.returncode != 0:  # refused (e.g. the issue is done): it says why, and nothing started
        assert "1" in said, said
        assert f"{world.prefix}-3" not in world.ao_ok("session", "ls"), said
        return
    sid = re.match(r"(\S+):", out.stdout).group(1)
    branch = re.search(r"\(branch (\S+)\)", out.stdout).group(1)
    assert branch != branch1, out.stdout
    world.wait("the new agent at work", lambda: "journey-agent>" in world.pane(sid), session=sid)
    facts = world.session_facts(sid)
    pr = facts["pull_request"]  # none yet, or the one this agent opened from its own branch
    assert facts["status"] != "merged", facts
    assert pr is None or (pr["branch"] == branch and pr["state"] == "open" and pr["number"] != 1), facts
    world.ao_ok("session", "kill", sid)


# --- 14. kill from the CLI ------------------------------------------------------------------------------------
def test_14_kill_a_session_from_the_cli(world: World) -> None:
    (workspace,) = need(world, "workspace2")
    sid = sid2(world)
    world.wait("the agent's commit", lambda: last_subject(workspace) == "Add sub", session=sid)
    to_board(world.page)  # the person watches the board while they kill it from their shell
    world.wait("the card on the board", lambda: world.card_zone(sid) not in (None, "done"), session=sid)

    world.ao_ok("session", "kill", sid)

    world.wait("its tmux session gone", lambda: sid not in world.tmux_sessions())
    assert workspace.is_dir(), "a killed session keeps its worktree"
    assert re.search(rf"^{sid}\s+killed\b", world.ao_ok("session", "ls", "--include-terminated"), re.M)
    facts = world.session_facts(sid)
    assert (facts["status"], facts["zone"]) == ("killed", "done"), facts


# --- 15. the pages people have open follow what the CLI did -----------------------------------------------
def test_15_open_pages_follow_a_kill_from_the_cli(world: World) -> None:
    need(world, "workspace2")
    sid = sid2(world)
    world.wait(
        "the open board moving the card to Done",
        lambda: world.card_zone(sid) == "done",
        timeout=15,
        session=sid,
    )
    tab = world.terminals[sid]  # the session page open since the spawn
    world.wait(
        "Restore offered on the open session page",
        lambda: tab.locator("#restore-form button").is_visible(),
        timeout=15,
        session=sid,
        show=lambda: tab.locator("#actions").inner_text(),
    )
    assert not tab.locator("#send-form").is_visible()  # a dead agent is offered no Send


# --- 16. restore ----------------------------------------------------------------------------------------------
def test_16_restore_brings_the_agent_back_with_its_work(world: World) -> None:
    (workspace,) = need(world, "workspace2")
    sid = sid2(world)
    world.ao_ok("session", "restore", sid)

    world.wait("the agent running again", lambda: "journey agent" in world.pane(sid), session=sid)
    assert last_subject(workspace) == "Add sub"  # its work is still there
    to_board(world.page)
    world.wait("the card back out of Done", lambda: world.card_zone(sid) not in (None, "done"), session=sid)


# --- 17. ao send to a killed session -------------------------------------------------------------------------
def test_17_send_to_a_killed_session_restores_it_or_says_why_not(world: World) -> None:
    need(world, "workspace2")
    sid = sid2(world)
    world.ao_ok("session", "kill", sid)
    world.wait("its tmux session gone", lambda: sid not in world.tmux_sessions())

    result = world.ao("send", sid, "Are you still there?")

    said = result.stdout + result.stderr
    if result.returncode != 0:  # refused: it must say why
        assert sid in said and "killed" in said, said
        return
    world.wait(
        "the message delivered to the restored agent",
        lambda: any("Are you still there?" in m for m in world.received(sid)),
        timeout=40,
        session=sid,
    )


# --- 18. no terminal reply ever reached an agent --------------------------------------------------------------
def test_18_the_browser_terminals_never_typed_into_an_agent(world: World) -> None:
    sessions = [sid for sid in (sid1(world), sid2(world)) if sid in world.terminals]
    assert sessions, "no browser terminal was opened"
    for sid in sessions:
        assert world.received(sid), f"{sid} never read anything"
        assert world.input_escapes(sid) == [], f"the terminal's own replies reached {sid}'s input"
        assert not any("\x1b" in message for message in world.received(sid))


# --- 19. the stray project goes, from the admin ------------------------------------------------------------
def test_19_a_superuser_deletes_the_stray_project_in_the_admin(world: World) -> None:
    (stray,) = need(world, "stray")
    page = world.page
    to_board(page)
    page.locator("nav a", has_text="Admin").click()
    page.locator("a", has_text="Projects").first.click()
    page.locator("#result_list a", has_text=stray).first.click()
    page.locator("a.deletelink").click()
    page.locator("input[type=submit]").click()  # "Yes, I'm sure"

    said = page.locator(".messagelist").inner_text()
    assert "deleted" in said.lower() and stray in said, said
    assert page.locator("#result_list a", has_text=stray).count() == 0
    assert stray not in world.ao_ok("status")
    assert world.project in world.ao_ok("status")
    assert world.api(f"projects/{stray}/").status_code == 404
