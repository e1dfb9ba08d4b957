"""Project admins configure their own projects in the Django admin without being superusers.

Two pieces:

- :class:`ProjectAdminBackend` (in ``AUTHENTICATION_BACKENDS``) gives an active user who has the
  admin role in at least one project the model permissions the admin checks for configuring a
  project: view and change projects, view/add/change/delete memberships, view sessions, their
  timeline and the audit log. Nothing else (users, tokens, secrets, notifiers stay superusers').
- :class:`ProjectScopedAdminMixin` (first in the bases of every admin whose rows belong to a
  project) limits what a non-superuser sees and edits to the projects they are admin of: the
  change list, the change/delete/history pages (another project's object is a 404), and the
  project choices of forms (a membership cannot be granted on another project).

The Django admin still needs ``is_staff`` to be opened at all. Giving someone the admin role in
the admin (a membership's page or a project's members inline) makes them staff, so the person a
project admin promotes can configure the project too (``grant_staff_for_admin_role``). Removing
the role does not take staff status away: a staff user with no admin role sees nothing in the
admin (ao's admin permissions come from the role); a superuser can clear it under Users.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.backends import BaseBackend
from django.http import Http404

from sessions.core import audit
from sessions.models import Membership, Project

APP = "agent_sessions"
PROJECT_ADMIN_PERMS = frozenset(
    f"{APP}.{perm}"
    for perm in (
        "view_project",
        "change_project",
        "view_membership",
        "add_membership",
        "change_membership",
        "delete_membership",
        "view_session",
        "view_event",
        "view_auditentry",
    )
)
_CACHE = "_ao_admin_project_ids"


def admin_project_ids(user) -> frozenset[int]:
    """The pks of the projects ``user`` has the admin role in (cached on the user object)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, _CACHE, None)
    if cached is None:
        cached = frozenset(
            Membership.objects.filter(user=user, role=Membership.Role.ADMIN).values_list(
                "project_id", flat=True
            )
        )
        setattr(user, _CACHE, cached)
    return cached


class ProjectAdminBackend(BaseBackend):
    """Model permissions from the project admin role (authenticates nobody)."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if obj is not None or not admin_project_ids(user_obj):
            return set()
        return set(PROJECT_ADMIN_PERMS)

    def has_module_perms(self, user_obj, app_label: str) -> bool:
        return app_label == APP and bool(admin_project_ids(user_obj))


def _project_pk_of(obj, path: str):
    """The pk of ``obj``'s project along ``path`` ("pk", "project", "session__project")."""
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    for name in hops:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


class ProjectScopedAdminMixin:
    """Scopes a ModelAdmin (or inline) to the projects a non-superuser is admin of.

    ``project_path`` is the lookup from the model to its project's pk (``"pk"`` for Project)."""

    project_path = "project"

    def _scoped(self, request) -> bool:
        return not request.user.is_superuser

    def _in_scope(self, request, obj) -> bool:
        if obj is None or not self._scoped(request):
            return True
        return _project_pk_of(obj, self.project_path) in admin_project_ids(request.user)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if not self._scoped(request):
            return qs
        field = "pk" if self.project_path == "pk" else f"{self.project_path}__pk"
        return qs.filter(**{f"{field}__in": admin_project_ids(request.user)})

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None and self._scoped(request):
            raise Http404("no such object among your projects")
        return obj

    def get_list_filter(self, request):
        # A project filter lists only the projects in the (scoped) change list, not every project.
        filters = super().get_list_filter(request)
        if not self._scoped(request):
            return filters
        return tuple((f, admin.RelatedOnlyFieldListFilter) if f == "project" else f for f in filters)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Project and self._scoped(request):
            kwargs["queryset"] = Project.objects.filter(pk__in=admin_project_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) and self._in_scope(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._in_scope(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._in_scope(request, obj)


def grant_staff_for_admin_role(request, membership) -> None:
    """Make the user of an admin membership staff, so that they can open the admin (audited)."""
    user = membership.user
    if membership.role != Membership.Role.ADMIN or user.is_staff:
        return
    type(user).objects.filter(pk=user.pk).update(is_staff=True)
    user.is_staff = True
    audit.record(
        action="user.change",
        target=user,
        project=membership.project,
        data={"fields": ["is_staff"], "why": "admin role"},
    )
    messages.info(
        request,
        f"{user.get_username()} is now staff (admin role in {membership.project.key}): "
        "they can open the admin to configure it.",
    )
