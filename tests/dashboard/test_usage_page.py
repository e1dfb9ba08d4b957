"""The usage page in headless Chromium against a real `ao start`: its charts are drawn (Chart.js,
vendored) from the numbers the API gives, under the Content-Security-Policy without a violation."""

from __future__ import annotations

import pytest

from tests.dashboard.browser import Live, browser, live, output_dir  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SEED = """
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from sessions.models import Project, Session
User = get_user_model()
admin = User.objects.filter(is_superuser=True).first()
dana = User.objects.create_user("dana", password="pw-for-tests-only")
e2e = Project.objects.get(key="e2e")
shop = Project.objects.create(key="shop", path=e2e.path, session_prefix="shop", monthly_budget_usd=Decimal("5"))
now = timezone.now()
rows = [
    (e2e, 11, admin, "claude-code", "claude-sonnet-4-5", 120000, 8000, "1.2500", 0),
    (e2e, 12, dana, "codex", "gpt-5", 60000, 4000, "0.7500", 0),
    (shop, 1, admin, "claude-code", "claude-sonnet-4-5", 200000, 15000, "2.4000", 1),
    (shop, 2, None, "aider", "gpt-4.1", 30000, 2500, "0.3000", 2),
    (e2e, 13, dana, "gemini", "gemini-2.5-pro", 90000, 6000, "0.9000", 4),
]
for project, number, by, agent, model, tin, tout, cost, days in rows:
    s = Session.objects.create(
        id=f"{project.session_prefix}-{number}", project=project, number=number, agent=agent, model=model,
        created_by=by, tokens_in=tin, tokens_out=tout, phase="running", status="working", zone="working",
    )
    Session.objects.filter(pk=s.pk).update(cost_usd=Decimal(cost), created_at=now - timedelta(days=days, minutes=1))
print("seeded")
"""

WATCH = """window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline")));"""

# What each chart holds, and how many of its canvas pixels are painted.
CHARTS = """() => Object.fromEntries(["chart-cost", "chart-tokens", "chart-users", "chart-models"].map((id) => {
  const canvas = document.getElementById(id);
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return [id, {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => [d.label, d.data]),
    bars: chart.getDatasetMeta(0).data.filter((bar) => Math.abs(bar.base - (chart.options.indexAxis === "y" ? bar.x : bar.y)) >= 1).length,
    painted,
  }];
}))"""


def test_the_usage_page_draws_the_apis_numbers_under_the_csp(live: Live, browser) -> None:  # noqa: F811
    assert live.shell(SEED).strip().endswith("seeded")
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    live.sign_in(page)  # the one-time link signs the admin in
    page.add_init_script(WATCH)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(  # every console error but the browser's own look for /favicon.ico (ao has none)
        "console",
        lambda m: (
            errors.append(f"{m.text} {m.location}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )

    page.click("nav.topnav >> text=Usage")  # from the top bar
    page.wait_for_url(f"{live.base}/usage/")
    page.wait_for_selector("#chart-models[data-drawn='1']")
    api = context.request.get(f"{live.base}/api/v1/usage?since=30d&bucket=day").json()
    shown = page.evaluate(CHARTS)

    periods = [p["period"] for p in api["over_time"]]
    assert shown["chart-cost"]["labels"] == periods
    assert sorted(shown["chart-cost"]["datasets"]) == sorted(
        [key, [p["projects"].get(key, {}).get("cost_usd", 0) for p in api["over_time"]]]
        for key in ("e2e", "shop")
    )
    assert shown["chart-tokens"]["datasets"] == [
        ["in", [p["tokens_in"] for p in api["over_time"]]],
        ["out", [p["tokens_out"] for p in api["over_time"]]],
    ]
    assert shown["chart-users"]["labels"] == [r["name"] for r in api["by_user"]]
    assert [r["name"] for r in api["by_user"]][1:] == ["dana", "ao"]  # the admin spent most
    assert shown["chart-users"]["datasets"] == [["cost", [3.65, 1.65, 0.3]]]
    assert shown["chart-models"]["labels"] == [r["name"] for r in api["by_agent_model"]]
    assert shown["chart-models"]["datasets"] == [["cost", [r["cost_usd"] for r in api["by_agent_model"]]]]
    # drawn, not only configured: a visible bar per non-zero value, and paint on every canvas
    assert shown["chart-users"]["bars"] == 3 and shown["chart-models"]["bars"] == 4
    assert shown["chart-cost"]["bars"] == sum(1 for p in api["over_time"] if p["projects"].get("e2e"))
    assert all(chart["painted"] > 2000 for chart in shown.values()), {
        k: v["painted"] for k, v in shown.items()
    }

    assert api["totals"]["cost_usd"] == 5.6 and api["totals"]["sessions"] == 6  # the 5 seeded + e2e-1
    assert page.inner_text("[data-total=cost_usd]") == "$5.60"
    assert page.inner_text("[data-total=tokens]") == f"{api['totals']['tokens']:,}"
    (shop,) = [b for b in api["budgets"] if b["name"] == "shop"]
    assert page.inner_text("#usage-budgets [data-budget='project:shop']").split()[:4] == [
        "project",
        "shop",
        f"${shop['spent_usd']:.2f}",
        "$5.00",
    ]
    assert page.evaluate("window.__violations") == [] and errors == []

    page.click(".mode-toggle >> text=per week")
    page.wait_for_selector("#chart-cost[data-drawn='1']")
    weekly = page.evaluate(CHARTS)["chart-cost"]
    assert round(sum(sum(data) for _, data in weekly["datasets"]), 4) == 5.6

    page.screenshot(path=str(output_dir("usage") / "usage.png"), full_page=True)
    assert page.evaluate("window.__violations") == [] and errors == []
    context.close()
