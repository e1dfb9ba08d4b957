"""Every change made in the admin is an ``AuditEntry`` (``sessions.core.audit``).

:class:`AuditedAdminMixin` goes first in the bases of every ``ModelAdmin`` ao registers, and of
their inlines' parents (a membership added on a project's page is recorded too). It records:

- ``<model>.create`` / ``<model>.change`` with the names of the fields that changed (never their
  values: a form may hold a secret or a password), for the object and for each inline row;
- ``<model>.delete`` for each object deleted (the delete page and the "delete selected" action).

The action, target (model and primary key) and, where the object belongs to a project, that
project. The actor is the signed-in person and the source ``admin`` (``AuditContextMiddleware``
sets it for requests under the admin's URL). Admins whose ``save_model`` goes through a service
that records its own entry (tokens, secrets) set ``audit_saves = False``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models

from sessions.core import audit
from sessions.models import Project

_NOT_FIELDS = {"DELETE", "id"}


def project_of(obj: Any):
    """The project an object belongs to (itself, its ``project``, its session's), or None."""
    if isinstance(obj, Project):
        return obj
    for path in (("project",), ("session", "project"), ("notification", "project")):
        value = obj
        try:
            for name in path:
                value = getattr(value, name, None)
        except models.ObjectDoesNotExist:
            value = None
        if isinstance(value, Project):
            return value
    return None


def _field_names(form) -> list[str]:
    return [name for name in getattr(form, "changed_data", []) if name not in _NOT_FIELDS]


def _record(obj, verb: str, data: dict | None = None) -> None:
    audit.record(
        action=f"{obj._meta.model_name}.{verb}", target=obj, project=project_of(obj), data=data or {}
    )


class AuditedAdminMixin:
    """Records creates, changes and deletes made through this ModelAdmin (see the module doc)."""

    audit_saves = True

    def construct_change_message(self, request, form, formsets, add=False):
        # Called by the admin after the object (and its inlines) are saved: on the add and change
        # pages, in the change list's editable columns and on the user's password page.
        # The password page's form is not a ModelForm: its object is ``form.user``.
        obj = getattr(form, "instance", None) or getattr(form, "user", None)
        if self.audit_saves and isinstance(obj, models.Model):
            fields = _field_names(form)
            if add or fields:
                _record(obj, "create" if add else "change", {"fields": fields})
        return super().construct_change_message(request, form, formsets, add)

    def save_formset(self, request, form, formset, change):
        # Inline rows: deleted ones are recorded before they go (their primary key with them).
        for inline_form in formset.deleted_forms:
            if inline_form.instance.pk is not None:
                _record(inline_form.instance, "delete", {"object": str(inline_form.instance)[:200]})
        super().save_formset(request, form, formset, change)
        for obj in getattr(formset, "new_objects", []):
            fields = next((_field_names(f) for f in formset.forms if f.instance is obj), [])
            _record(obj, "create", {"fields": fields})
        for obj, fields in getattr(formset, "changed_objects", []):
            _record(obj, "change", {"fields": [name for name in fields if name not in _NOT_FIELDS]})

    def log_deletions(self, request, queryset):
        # Called before the delete page and the "delete selected" action delete the objects.
        for obj in queryset:
            _record(obj, "delete", {"object": str(obj)[:200]})
        return super().log_deletions(request, queryset)


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """A ModelAdmin whose changes are audited."""
