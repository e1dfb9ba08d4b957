"""The layer checker (`ao_site/layers.py`, run by `make lint`): it finds import cycles and upward
imports, at module level and inside functions, and holds ao's own tree to its baseline."""

from __future__ import annotations

import textwrap

from ao_site import layers

LAYERS = ("top", "bottom")
MODULES = (("app.views", "top"), ("app.*", "bottom"), ("app", "bottom"))


def plant(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def analyse(root) -> layers.Report:
    return layers.analyse(root=root, packages=("app",), modules=MODULES, layers=LAYERS)


def test_a_planted_cycle_and_upward_import_are_flagged_until_baselined(tmp_path):
    plant(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/views.py": "from app.models import Thing\n",
            # The upward import hides inside a function, as most of ao's do; the relative import
            # closes a cycle with models.
            "app/models.py": """\
                from . import text

                class Thing:
                    def card(self):
                        from app import views
                        return views
                """,
            "app/text.py": "import app.models\n",
            "app/clean.py": "from app.text import *\n",
            "app/migrations/0001_initial.py": "from app import views\n",
        },
    )
    report = analyse(tmp_path)

    assert report.cycles == [frozenset({"app.models", "app.text", "app.views"})]
    assert [(i.source, i.target, i.local) for i in report.upward] == [("app.models", "app.views", True)]
    assert report.local_imports == {("app.models", 5)}
    assert "app.migrations.0001_initial" not in report.modules
    violations = report.violations()
    assert violations == {"cycle: app.models app.text app.views", "up: app.models -> app.views"}

    # Not in the baseline: both are new, and the checker fails on them.
    new, gone = layers.compare(report, set())
    assert new == sorted(violations)
    # Baselined: nothing new, nothing gone.
    assert layers.compare(report, violations) == ([], [])

    # Fixed (the function-local import removed): the cycle shrinks, which its baseline entry
    # allows, and both entries are reported gone so they get deleted.
    plant(tmp_path, {"app/models.py": "from . import text\n"})
    fixed = analyse(tmp_path)
    assert fixed.cycles == [frozenset({"app.models", "app.text"})]
    assert fixed.upward == []
    new, gone = layers.compare(fixed, violations)
    assert new == []
    assert gone == sorted(violations)

    # --update-baseline keeps the shrunk cycle and drops what is gone; a new upward import
    # elsewhere is not allowed by any entry.
    baseline = tmp_path / "baseline.txt"
    layers.write_baseline(baseline, violations & fixed.violations() | layers._shrunk(fixed, violations))
    assert layers.read_baseline(baseline) == {"cycle: app.models app.text"}
    plant(tmp_path, {"app/clean.py": "def f():\n    import app.views\n"})
    new, _ = layers.compare(analyse(tmp_path), layers.read_baseline(baseline))
    assert new == ["up: app.clean -> app.views"]


def test_ao_itself_keeps_to_its_baseline(capsys):
    assert layers.main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "cycles:" in out and "upward imports:" in out and "function-local imports" in out


def test_a_function_local_import_says_why_it_cannot_sit_at_module_level(tmp_path):
    plant(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/models.py": "X = 1\n",
            "app/views.py": """\
                def page():
                    from app import models
                    return models

                def card():
                    # local: app.models loads after this module
                    from app.models import X
                    return X

                def panel():
                    from app import models  # local: the same, said on the line
                    return models
                """,
        },
    )
    report = analyse(tmp_path)

    assert report.unexplained == [("app.views", 2)]
    assert sorted(i.reason for i in report.imports if i.local) == [
        "",
        "app.models loads after this module",
        "the same, said on the line",
    ]
    assert len(report.local_imports) == 3
