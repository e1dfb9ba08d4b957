"""Signing in with a one-time login link as a browser does: open it, press its button."""

from __future__ import annotations

from html.parser import HTMLParser


class _SignInForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.button = ""
        self._in_form = self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and values.get("method") == "post" and "one-time" in values.get("action", ""):
            self.action, self._in_form = values["action"], True
        elif self._in_form and tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")
        elif self._in_form and tag == "button" and values.get("type") == "submit":
            self._in_button = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.button += data


def sign_in_form(html: str) -> tuple[str, dict[str, str], str]:
    """The one-time link's confirmation page: its form's action, fields and button text."""
    form = _SignInForm()
    form.feed(html)
    assert form.action is not None, f"no sign-in form on the page:\n{html}"
    return form.action, form.fields, form.button.strip()
