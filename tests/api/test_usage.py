"""The usage numbers (API, page, `ao retro`) and monthly budgets (spawns refused with the reason,
people told once), from sessions whose tokens and cost are known to the cent."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from reactions.models import Notification
from sessions.api.tokens import api_token_create
from sessions.core import usage
from sessions.models import AuditEntry, Membership, Project, Session, UserBudget
from tests.factories import ProjectFactory, SessionFactory, UserFactory


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='usage-test')[1]}")
    return client


def _session(project, *, by, agent, model, tokens_in, tokens_out, cost, at):
    session = SessionFactory(
        project=project, created_by=by, agent=agent, model=model, tokens_in=tokens_in, tokens_out=tokens_out
    )
    Session.objects.filter(pk=session.pk).update(cost_usd=Decimal(cost), created_at=at)
    return session


@pytest.fixture
def team(db):
    web = ProjectFactory(key="web", session_prefix="web")
    api = ProjectFactory(key="api", session_prefix="api")
    secret = ProjectFactory(key="secret", session_prefix="sec")
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    for user, project, role in (
        (alice, web, "operator"),
        (alice, api, "operator"),
        (bob, web, "operator"),
        (carol, web, "viewer"),
    ):
        Membership.objects.create(user=user, project=project, role=role)
    now = timezone.now()
    sonnet = ("claude-code", "claude-sonnet-4-5")
    rows = {
        "s1": (web, alice, *sonnet, 1000, 200, "0.1234", now - timedelta(minutes=5)),
        "s2": (web, bob, "codex", "gpt-5", 500, 50, "0.5000", now - timedelta(minutes=3)),
        "s3": (api, alice, *sonnet, 2000, 300, "1.2500", now - timedelta(days=1)),
        "s4": (web, None, "claude-code", "claude-opus-4-1", 100, 10, "0.0100", now - timedelta(days=3)),
        "old": (web, alice, *sonnet, 9999, 999, "9.9999", now - timedelta(days=40)),
        "hidden": (secret, bob, *sonnet, 7000, 700, "7.0000", now - timedelta(days=2)),
    }
    sessions = {}
    for name, (project, by, agent, model, tin, tout, cost, at) in rows.items():
        sessions[name] = _session(
            project, by=by, agent=agent, model=model, tokens_in=tin, tokens_out=tout, cost=cost, at=at
        )
    return {"web": web, "api": api, "alice": alice, "bob": bob, "carol": carol, "root": root, **sessions}


def _day(session) -> str:
    return Session.objects.get(pk=session.pk).created_at.astimezone(UTC).date().isoformat()


def _named(rows: list[dict]) -> dict:
    return {r["name"]: (r["sessions"], r["tokens_in"], r["tokens_out"], r["cost_usd"]) for r in rows}


def test_usage_api_sums_per_person_agent_model_project_and_day(team) -> None:
    response = _client(team["alice"]).get("/api/v1/usage", {"since": "30d"})
    assert response.status_code == 200
    data = response.json()
    # alice sees web and api (not secret); the 40-day-old session is outside the window
    assert data["totals"] == {
        "sessions": 4,
        "tokens_in": 3600,
        "tokens_out": 560,
        "tokens": 4160,
        "cost_usd": 1.8834,
    }
    assert _named(data["by_user"]) == {
        "alice": (2, 3000, 500, 1.3734),
        "bob": (1, 500, 50, 0.5),
        "ao": (1, 100, 10, 0.01),  # spawned by ao itself (intake, the host's CLI)
    }
    assert [r["name"] for r in data["by_user"]] == ["alice", "bob", "ao"]  # costliest first
    assert _named(data["by_agent_model"]) == {
        "claude-code/claude-sonnet-4-5": (2, 3000, 500, 1.3734),
        "codex/gpt-5": (1, 500, 50, 0.5),
        "claude-code/claude-opus-4-1": (1, 100, 10, 0.01),
    }
    assert _named(data["by_project"]) == {"api": (1, 2000, 300, 1.25), "web": (3, 1600, 260, 0.6334)}

    days = {p["period"]: p for p in data["over_time"]}
    assert len(data["over_time"]) == 31  # every day of the window, empty ones too
    assert [p["period"] for p in data["over_time"]] == sorted(days)
    expected: dict[str, dict[str, tuple]] = {}
    for name, project in (("s1", "web"), ("s2", "web"), ("s3", "api"), ("s4", "web")):
        s = Session.objects.get(pk=team[name].pk)
        cell = expected.setdefault(_day(s), {}).setdefault(project, [0, 0, 0, Decimal(0)])
        cell[0] += 1
        cell[1] += s.tokens_in
        cell[2] += s.tokens_out
        cell[3] += s.cost_usd
    for period, row in days.items():
        got = {
            k: (v["sessions"], v["tokens_in"], v["tokens_out"], v["cost_usd"])
            for k, v in row["projects"].items()
        }
        want = {k: (c[0], c[1], c[2], float(c[3])) for k, c in expected.get(period, {}).items()}
        assert got == want, period
        assert row["cost_usd"] == float(sum((c[3] for c in expected.get(period, {}).values()), Decimal(0)))
        assert row["sessions"] == sum(c[0] for c in expected.get(period, {}).values())
    assert sum(p["tokens"] for p in data["over_time"]) == 4160

    weekly = _client(team["alice"]).get("/api/v1/usage", {"since": "30d", "bucket": "week"}).json()
    assert all(date.fromisoformat(p["period"]).weekday() == 0 for p in weekly["over_time"])  # Mondays
    assert sum(p["sessions"] for p in weekly["over_time"]) == 4
    assert sum(Decimal(str(p["cost_usd"])) for p in weekly["over_time"]) == Decimal("1.8834")

    everything = _client(team["alice"]).get("/api/v1/usage", {"since": "all"}).json()
    assert everything["totals"]["sessions"] == 5 and everything["totals"]["cost_usd"] == 11.8833


def test_usage_api_shows_only_what_the_caller_may_see(team) -> None:
    carol = _client(team["carol"])
    data = carol.get("/api/v1/usage", {"since": "30d"}).json()
    assert _named(data["by_project"]) == {"web": (3, 1600, 260, 0.6334)}
    assert carol.get("/api/v1/usage", {"project": "api"}).status_code == 404
    assert carol.get("/api/v1/usage", {"since": "yesterday"}).status_code == 400
    only_api = _client(team["alice"]).get("/api/v1/usage", {"since": "30d", "project": "api"}).json()
    assert only_api["totals"]["cost_usd"] == 1.25 and only_api["project"] == "api"
    # the superuser sees every project, the secret one too
    assert _client(team["root"]).get("/api/v1/usage", {"since": "30d"}).json()["totals"]["cost_usd"] == 8.8834
    assert APIClient().get("/api/v1/usage").status_code == 401


def test_usage_page_shows_the_api_numbers_and_feeds_the_charts(team, client) -> None:
    client.force_login(team["alice"])
    response = client.get("/usage/?since=30d")
    assert response.status_code == 200
    html = response.content.decode()
    data = json.loads(
        re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', html, re.S)[1]
    )
    api = _client(team["alice"]).get("/api/v1/usage", {"since": "30d"}).json()
    for key in ("totals", "by_user", "by_agent_model", "by_project"):
        assert data[key] == api[key]
    assert [p["period"] for p in data["over_time"]] == [p["period"] for p in api["over_time"]]
    assert (
        '<tr data-name="alice"><td class="mono">alice</td><td>2</td><td>3,000</td><td>500</td><td>1.3734</td>'
        in html
    )
    assert 'src="/static/vendor/chart.js-4.6.2/chart.umd.min.js"' in html
    assert "<script>" not in html  # no inline script: the CSP allows none
    assert client.get("/usage/?project=secret").status_code == 404
    assert 'href="/usage/"' in client.get("/tokens/").content.decode()  # in the top bar


def test_retro_prints_the_usage_pages_numbers(team) -> None:
    out = StringIO()
    call_command("retro", "--since", "30d", "--json", stdout=out)
    retro = json.loads(out.getvalue())["usage"]
    api = _client(team["root"]).get("/api/v1/usage", {"since": "30d"}).json()
    for key in ("totals", "by_user", "by_agent_model", "by_project"):
        assert retro[key] == api[key]
    assert [(p["period"], p["cost_usd"]) for p in retro["over_time"]] == [
        (p["period"], p["cost_usd"]) for p in api["over_time"]
    ]
    text = StringIO()
    call_command("retro", "--since", "30d", stdout=text)
    lines = text.getvalue().splitlines()
    assert (
        "Usage of the 5 session(s) spawned in the window, finished or not (11860 tokens, $8.8834):" in lines
    )
    by_person = lines.index("Usage by person:")
    assert lines[by_person + 1].split() == [
        "person",
        "sessions",
        "tokens",
        "in",
        "tokens",
        "out",
        "cost",
        "$",
    ]
    assert lines[by_person + 2].split() == ["bob", "2", "7500", "750", "7.5000"]
    assert lines[by_person + 3].split() == ["alice", "2", "3000", "500", "1.3734"]
    by_model = lines.index("Usage by agent/model:")
    assert lines[by_model + 2].split() == ["claude-code/claude-sonnet-4-5", "3", "10000", "1200", "8.3734"]


# --- budgets ----------------------------------------------------------------------------------------
@pytest.fixture
def budget(db):
    web = ProjectFactory(key="web", session_prefix="web", next_session_number=100)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for user in (alice, bob):
        Membership.objects.create(user=user, project=web, role="operator")
    spent = _session(
        web,
        by=alice,
        agent="claude-code",
        model="",
        tokens_in=10,
        tokens_out=1,
        cost="0.6000",
        at=timezone.now(),
    )
    return {"web": web, "alice": alice, "bob": bob, "spent": spent}


def _spawn(user):
    return _client(user).post("/api/v1/projects/web/spawn", {"prompt": "add a health check"}, format="json")


def test_a_spawn_over_the_projects_budget_is_refused_with_the_reason_and_each_person_told_once(
    budget,
) -> None:
    web = budget["web"]
    Project.objects.filter(pk=web.pk).update(monthly_budget_usd=Decimal("1.00"))
    assert _spawn(budget["alice"]).status_code == 201  # $0.60 of $1.00: under the cap
    Session.objects.filter(pk=budget["spent"].pk).update(cost_usd=Decimal("1.0000"))
    sessions_before = Session.objects.count()

    refused = _spawn(budget["bob"])
    month = f"{usage.month_start():%B %Y}"
    reason = (
        f"not spawned: project web is over its monthly budget: $1.00 spent in {month} (UTC) of $1.00 "
        f"(monthlyBudgetUsd); spawns resume on {usage._next_month(usage.month_start()):%Y-%m-%d} "
        "or when the budget is raised"
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "refused"
    assert refused.json()["error"]["message"] == reason
    assert Session.objects.count() == sessions_before  # nothing written
    assert not AuditEntry.objects.filter(action="session.spawn", actor_user=budget["bob"]).exists()
    told = Notification.objects.get(rule="budget")
    assert told.title == "Spawn refused: project web is over its $1.00 monthly budget"
    assert told.body == reason.removeprefix("not spawned: ")
    assert told.priority == "warning" and told.project == web and told.url.endswith("/usage/")
    assert told.recipient == budget["bob"]  # the person refused

    assert _spawn(budget["bob"]).status_code == 409
    assert Notification.objects.filter(rule="budget").count() == 1  # once per person, cap and month
    assert _spawn(budget["alice"]).status_code == 409
    assert list(Notification.objects.filter(rule="budget").values_list("recipient__username", flat=True)) == [
        "alice",
        "bob",
    ]

    with pytest.raises(CommandError, match=re.escape(reason)):  # the host's CLI: the same reason
        call_command("spawn", "--project", "web", "--prompt", "x", stdout=StringIO())
    assert Session.objects.count() == sessions_before

    Project.objects.filter(pk=web.pk).update(monthly_budget_usd=Decimal("2.00"))  # raised: spawns resume
    assert _spawn(budget["bob"]).status_code == 201


def test_a_persons_budget_refuses_their_spawns_only(budget) -> None:
    out = StringIO()
    call_command("budget", "set", "alice", "0.50", stdout=out)
    assert out.getvalue().strip() == "alice: $0.50 per month; $0.60 spent this month"
    assert UserBudget.objects.get(user=budget["alice"]).monthly_budget_usd == Decimal("0.50")
    assert AuditEntry.objects.filter(action="budget.set", target_id="alice").exists()

    refused = _spawn(budget["alice"])
    assert refused.status_code == 409
    message = refused.json()["error"]["message"]
    assert message.startswith("not spawned: alice is over their monthly budget: $0.60 spent in ")
    assert message.endswith("or when a superuser raises it (ao budget set alice AMOUNT)")
    told = Notification.objects.get(rule="budget")
    assert told.title == "Spawn refused: alice is over their $0.50 monthly budget"
    assert told.recipient == budget["alice"]
    assert _spawn(budget["bob"]).status_code == 201  # bob has no cap; alice's is hers alone

    # she sees her own budget on the usage API, bob sees none of hers
    mine = _client(budget["alice"]).get("/api/v1/usage").json()["budgets"]
    assert [(b["scope"], b["name"], b["spent_usd"], b["monthly_budget_usd"], b["over"]) for b in mine] == [
        ("user", "alice", 0.6, 0.5, True)
    ]
    assert _client(budget["bob"]).get("/api/v1/usage").json()["budgets"] == []

    listing = StringIO()
    call_command("budget", "ls", stdout=listing)
    assert "user alice" in listing.getvalue() and "over: spawns refused" in listing.getvalue()
    call_command("budget", "rm", "alice", stdout=StringIO())
    assert _spawn(budget["alice"]).status_code == 201
    with pytest.raises(CommandError, match="is not an amount"):
        call_command("budget", "set", "alice", "lots", stdout=StringIO())
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("budget", "set", "nobody", "5", stdout=StringIO())


def test_the_project_budget_comes_from_the_config_file(tmp_path, db) -> None:
    from sessions.core import services
    from sessions.core.config.loading import config_load

    checkout = tmp_path / "repo"
    checkout.mkdir()
    config = tmp_path / "ao.config.yaml"
    config.write_text(f"projects:\n  web:\n    path: {checkout}\n    monthlyBudgetUsd: 25.5\n")
    services.config_apply(config=config_load(config), source=config)
    assert Project.objects.get(key="web").monthly_budget_usd == Decimal("25.50")
    again = services.config_apply(config=config_load(config), source=config)
    assert "unchanged project web" in again
    config.write_text(f"projects:\n  web:\n    path: {checkout}\n    monthlyBudgetUsd: -1\n")
    with pytest.raises(Exception, match="monthlyBudgetUsd"):
        config_load(config)


def test_month_start_is_the_first_of_the_utc_month() -> None:
    assert usage.month_start(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
    assert usage._next_month(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
