"""Numbers as people read them: ``{{ n|count }}`` → ``1,234,567``."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def count(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
