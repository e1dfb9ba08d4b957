"""``{{ url|safe_url }}``: a URL that came from outside ao, or "" unless it is http(s).

Every ``href`` built from outside data (a PR's, check's, issue's or review thread's URL, a
decision's link) goes through it; links to other sites also carry ``rel="noopener noreferrer"``.
tests/dashboard/test_links.py walks every template and fails on an outside ``href`` without it.
"""

from __future__ import annotations

from django import template

from ao_site.links import http_url

register = template.Library()


@register.filter(is_safe=False)
def safe_url(value) -> str:
    return http_url(value)
