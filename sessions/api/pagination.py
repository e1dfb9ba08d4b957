"""Cursor pagination: stable under inserts, which a timeline that grows while you page needs."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class AoCursorPagination(CursorPagination):
    """``?cursor=...&limit=N`` (default 50, at most 200); responses are ``{next, previous, results}``."""

    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    ordering = "-pk"


def cursor_by(*ordering: str) -> type[AoCursorPagination]:
    """A cursor paginator ordered by these fields (the first one should be unique or nearly)."""
    return type("AoCursorPagination", (AoCursorPagination,), {"ordering": ordering})
