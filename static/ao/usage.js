// The usage page's charts (sessions/dashboard/views_usage.py), drawn with the vendored Chart.js from the
// page's own JSON (#usage-data: the numbers the tables, the API and `ao retro` give). No inline
// script: the Content-Security-Policy allows scripts from ao's origin only.
(function () {
  "use strict";
  const source = document.getElementById("usage-data");
  if (!source || typeof window.Chart === "undefined") return;
  const usage = JSON.parse(source.textContent);
  const Chart = window.Chart;
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
  Chart.defaults.color = color("--muted", "#8d96a8");
  Chart.defaults.borderColor = color("--line", "#262e3f");
  Chart.defaults.font.size = 12;
  const palette = ["#4f8cff", "#2fbf71", "#f5a524", "#f04d4d", "#a78bfa", "#22d3ee", "#f472b6", "#94a3b8"];
  const money = (v) => "$" + Number(v).toFixed(2);
  const count = (v) => Number(v).toLocaleString("en");
  const periods = usage.over_time.map((p) => p.period);

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    config.options = Object.assign(
      { animation: false, responsive: true, maintainAspectRatio: false },
      config.options || {}
    );
    new Chart(canvas, config);
    canvas.dataset.drawn = "1";
  }

  function tooltip(format) {
    return { callbacks: { label: (c) => (c.dataset.label ? c.dataset.label + ": " : "") + format(c.parsed[c.chart.options.indexAxis === "y" ? "x" : "y"]) } };
  }

  const projects = usage.by_project.map((p) => p.project).sort();
  draw("chart-cost", {
    type: "bar",
    data: {
      labels: periods,
      datasets: projects.map((key, i) => ({
        label: key,
        data: usage.over_time.map((p) => (p.projects[key] ? p.projects[key].cost_usd : 0)),
        backgroundColor: palette[i % palette.length],
      })),
    },
    options: {
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { callback: money } } },
      plugins: { tooltip: tooltip(money), legend: { display: projects.length > 1 } },
    },
  });
  draw("chart-tokens", {
    type: "bar",
    data: {
      labels: periods,
      datasets: [
        { label: "in", data: usage.over_time.map((p) => p.tokens_in), backgroundColor: palette[0] },
        { label: "out", data: usage.over_time.map((p) => p.tokens_out), backgroundColor: palette[1] },
      ],
    },
    options: {
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { callback: count } } },
      plugins: { tooltip: tooltip(count) },
    },
  });
  for (const [id, rows, tone] of [
    ["chart-users", usage.by_user, 0],
    ["chart-models", usage.by_agent_model, 2],
  ]) {
    draw(id, {
      type: "bar",
      data: {
        labels: rows.map((r) => r.name),
        datasets: [{ label: "cost", data: rows.map((r) => r.cost_usd), backgroundColor: palette[tone] }],
      },
      options: {
        indexAxis: "y",
        scales: { x: { beginAtZero: true, ticks: { callback: money } } },
        plugins: { tooltip: tooltip(money), legend: { display: false } },
      },
    });
  }
})();
