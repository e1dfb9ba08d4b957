"""The admin: projects (plugins and their settings validated by the plugins), members and roles,
API tokens (the raw token shown once), write-only secrets, the read-only timeline and audit log,
and ao.config.yaml import/export."""

from __future__ import annotations

from pathlib import Path

import yaml
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from pydantic import ValidationError as PydanticValidationError

from integrations.registry import ConfigurationError
from reactions.models import NotificationRoute, NotifierInstance
from reactions.rules import AUTO_CLEANUP_KEY, global_overrides_current
from sessions.agents.operating import project_delete
from sessions.agents.spawning import SpawnRefused
from sessions.api.tokens import api_token_create, api_token_revoke
from sessions.core import audit, host_settings, secrets, services
from sessions.core.config.loading import config_load, config_load_text
from sessions.core.config.problems import ConfigError
from sessions.core.config.schema import MAX_CONFIG_BYTES, ReactionConfig
from sessions.dashboard.admin_audit import AuditedAdminMixin, AuditedModelAdmin
from sessions.dashboard.admin_scope import ProjectScopedAdminMixin, grant_staff_for_admin_role
from sessions.models import (
    ApiToken,
    AuditEntry,
    CheckRun,
    Event,
    Host,
    Membership,
    Message,
    Project,
    PullRequest,
    ReviewThread,
    Secret,
    Session,
    UserBudget,
)


# --- projects -------------------------------------------------------------------------------------
class ProjectAdminForm(forms.ModelForm):
    """Each slot's plugin key and settings, and the orchestrator's agent and its settings, are checked
    by the plugin's own settings model (``host_settings.settings_problems``); reaction overrides by
    ao's ReactionConfig. Problems are shown on the field."""

    class Meta:
        model = Project
        fields = "__all__"  # noqa: DJ007 - the admin shows every editable field of a project

    host_user = None  # who edits (set by ProjectAdmin.get_form): host settings are superusers' only

    def clean(self):
        cleaned = super().clean()
        plugin_settings = cleaned.get("plugin_settings") or {}
        if not isinstance(plugin_settings, dict):
            self.add_error("plugin_settings", "a mapping {slot: {setting: value}}")
            return cleaned
        # what is proposed, before an error takes a field out of ``cleaned``
        proposed = {**host_settings.project_state(self.instance), **cleaned}
        self._guard_host_settings(proposed)
        for field, problem in host_settings.settings_problems(
            proposed,
            key=cleaned.get("key") or self.instance.key or "project",
            only=[f for f in (*Project.SLOTS, "orchestrator_agent") if f in self.fields],  # editable
        ):
            self.add_error(field if field in self.fields else None, problem)
        reactions = cleaned.get("reactions") or {}
        if not isinstance(reactions, dict):
            self.add_error("reactions", "a mapping {rule: {auto, action, message, ...}}")
        else:
            for rule, value in reactions.items():
                try:
                    ReactionConfig.model_validate(value)
                except PydanticValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or rule}: {e['msg']}" for e in exc.errors()
                    )
                    self.add_error("reactions", f"{rule}: {problems}")
        return cleaned

    def _guard_host_settings(self, proposed) -> None:
        """Settings that run programs or name places on the host, and those that say where ao's
        credentials go: superusers only (``sessions.core.host_settings``), whatever else the form
        lets a project admin change."""
        stored = host_settings.project_state(self.instance)
        try:
            host_settings.host_settings_guard(
                user=self.host_user or AnonymousUser(),
                before=stored if self.instance.pk else None,
                after=proposed,
            )
        except host_settings.HostSettingRefused as exc:
            fields = [change.split(".", 1)[0] for change in exc.changes]
            self.add_error(next((f for f in fields if f in self.fields), None), str(exc))


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("user", "project", "role")
        help_texts = {
            "role": "Admin: configures this project here (not a superuser). Giving the admin role "
            "also makes the person staff, which the admin needs to be opened at all.",
        }


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipAdminForm
    extra = 0
    autocomplete_fields = ()


# Fields that act on the ao host itself (paths, shell commands, tokens handed to agents, the config
# file: sessions.core.host_settings.PROJECT_HOST_FIELDS) or say where ao's credentials go (the
# repository its tokens read and write, the plugins holding them: CREDENTIAL_FIELDS): a project admin
# who is not a superuser sees them but cannot change them. Host settings inside plugin_settings /
# orchestrator_agent_settings, and the scm and tracker settings, are refused by the form
# (ProjectAdminForm._guard_host_settings).
HOST_FIELDS = (
    "key",
    *host_settings.PROJECT_HOST_FIELDS,
    *host_settings.CREDENTIAL_FIELDS,
)


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    """Superusers see every project; a staff project admin only the projects they are admin of
    (``sessions.dashboard.admin_scope``), without adding or deleting projects or touching HOST_FIELDS."""

    project_path = "pk"
    form = ProjectAdminForm
    list_display = ("key", "repo", "session_prefix", "agent", "runtime", "tracker", "scm", "max_sessions")
    search_fields = ("key", "repo", "path")
    inlines = [MembershipInline]
    actions = ["recheck_config", "export_config"]
    change_list_template = "admin/agent_sessions/project/change_list.html"

    def get_urls(self):
        return [
            path(
                "import-config/", self.admin_site.admin_view(self.import_config_view), name="ao-import-config"
            ),
            path("export-config/", self.admin_site.admin_view(self.export_all_view), name="ao-export-config"),
            *super().get_urls(),
        ]

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    # Deleting a project deletes its sessions and their timeline, which the admin otherwise keeps
    # append-only (no one may delete an Event row on its own): the permission to delete the
    # project is the permission to delete what belongs to it.
    def get_deleted_objects(self, objs, request):
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def log_deletions(self, request, queryset):
        # Django logs before it deletes; _delete logs each project once it really was deleted. The
        # audit entry is written by operating.project_delete (with what it stopped), not twice.
        return None

    def delete_model(self, request, obj) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        self._delete(request, list(queryset))

    def _delete(self, request, projects) -> None:
        """Stop each project's agents, then delete it (``operating.project_delete``); a refusal is an
        error message and the project stays. Remembers on the request what was deleted, for
        message_user."""
        from copy import copy

        deleted = request._ao_projects_deleted = []
        for project in projects:
            key, before = project.key, copy(project)
            try:
                notes = project_delete(project=project, by=request.user)
            except SpawnRefused as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            deleted.append(key)
            admin.ModelAdmin.log_deletions(self, request, [before])
            if notes:
                self.message_user(request, f"{key}: " + "; ".join(notes), level=messages.INFO)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs) -> None:
        # Django's "deleted successfully" follows delete_model/delete_queryset whatever they did:
        # say "deleted" only of the projects that were.
        deleted = getattr(request, "_ao_projects_deleted", None)
        if deleted is not None and level == messages.SUCCESS:
            if not deleted:
                return
            message = f"Deleted the project{'s' if len(deleted) > 1 else ''} {', '.join(deleted)}."
        super().message_user(request, message, level, *args, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + HOST_FIELDS

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.host_user = request.user
        return form

    def get_actions(self, request):
        # Re-checking and exporting config files concern the host and every project: superusers only.
        return super().get_actions(request) if request.user.is_superuser else {}

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects + [o for o, _fields in formset.changed_objects]:
            if isinstance(obj, Membership):
                grant_staff_for_admin_role(request, obj)

    @admin.action(description="Re-check the config file these projects came from")
    def recheck_config(self, request, queryset):
        sources = sorted({p.config_source for p in queryset if p.config_source})
        for project in queryset.filter(config_source=""):
            messages.warning(request, f"{project.key}: not loaded from a config file")
        for source in sources:
            try:
                config = config_load(source)
            except ConfigError as exc:
                for problem in exc.problems:
                    messages.error(request, str(problem))
                continue
            except (OSError, ConfigurationError) as exc:
                messages.error(request, f"{source}: {exc}")
                continue
            for warning in config.warnings:
                messages.warning(request, str(warning))
            messages.success(request, f"{source}: valid ({len(config.projects)} project(s))")

    @admin.action(description="Export as ao.config.yaml (with notifiers, routing and reactions)")
    def export_config(self, request, queryset):
        return config_export_response(queryset)

    def export_all_view(self, request):
        if not request.user.is_superuser:
            raise PermissionDenied
        return config_export_response(Project.objects.all())

    def import_config_view(self, request):
        """Import an uploaded ao.config.yaml, or one on the server by path: checked by ao's config
        loader first (every problem listed, nothing changed), then applied like `ao config apply`."""
        if not request.user.is_superuser:
            raise PermissionDenied
        form = ConfigImportForm(request.POST or None, request.FILES or None)
        changes: list[str] = []
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data.get("file")
            try:
                if upload is not None:
                    name = Path(upload.name or "ao.config.yaml").name
                    raw = upload.read(MAX_CONFIG_BYTES + 1)
                    config = config_load_text(raw, name=name)
                    source = f"uploaded {name}"
                else:
                    source = Path(form.cleaned_data["path"]).expanduser()
                    config = config_load(source)
                changes = services.config_apply(
                    config=config, source=source, applied_by="admin import", by=request.user
                )
            except ConfigError as exc:
                problems = [str(p) for p in exc.problems]
            except (OSError, ConfigurationError, host_settings.HostSettingRefused) as exc:
                problems = [str(exc)]
            if changes and not problems:
                for warning in config.warnings:
                    messages.warning(request, str(warning))
                for line in changes:
                    messages.success(request, line)
                return redirect("admin:agent_sessions_project_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import ao.config.yaml",
            "form": form,
            "problems": problems,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/agent_sessions/project/import_config.html", context)


class ConfigImportForm(forms.Form):
    file = forms.FileField(
        required=False,
        help_text="An ao.config.yaml from your computer (project paths must be absolute paths on the server).",
    )
    path = forms.CharField(
        max_length=1024,
        required=False,
        help_text="Or the path of an ao.config.yaml on the server.",
    )

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("file")) == bool((cleaned.get("path") or "").strip()):
            raise forms.ValidationError("Upload a file or give a path on the server (one of the two).")
        return cleaned


def config_export_response(projects) -> HttpResponse:
    text = config_yaml_for(projects)
    audit.record(
        action="config.export", target=("config", "admin"), data={"projects": [p.key for p in projects]}
    )
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="ao.config.yaml"'
    return response


def config_yaml_for(projects) -> str:
    """A complete ao.config.yaml for these Project rows (keys as the config file spells them), with
    the stored notifiers and routing and the top-level reactions of the config file in use.
    `ao config check` accepts it, and importing it writes the same rows back."""
    out: dict = {}
    routes = {row.priority: list(row.notifiers) for row in NotificationRoute.objects.all()}
    default_notifiers = routes.pop(NotificationRoute.DEFAULT, None)
    if default_notifiers:
        out["defaults"] = {"notifiers": default_notifiers}
    out["projects"] = {project.key: _project_entry(project, AUTO_CLEANUP_KEY) for project in projects}
    top_reactions = {name: dict(rule) for name, rule in global_overrides_current().items()}
    if top_reactions:
        out["reactions"] = top_reactions
    notifiers = {
        row.name: {"plugin": row.plugin, **(row.settings or {})} for row in NotifierInstance.objects.all()
    }
    if notifiers:
        out["notifiers"] = notifiers
    if routes:
        out["notificationRouting"] = routes
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True)


def _plugin_value(plugin: str, settings: dict) -> str | dict:
    return {"plugin": plugin, **settings} if settings else plugin


def _project_entry(project: Project, auto_cleanup_key: str) -> dict:
    entry: dict = {
        "name": project.name or project.key,
        "path": project.path,
        "defaultBranch": project.default_branch,
        "sessionPrefix": project.session_prefix,
    }
    if project.repo:
        entry["repo"] = project.repo
    for slot in Project.SLOTS:
        entry[slot] = _plugin_value(project.plugin_key(slot), project.settings_for(slot))
    for field, name in (
        ("agent_rules", "agentRules"),
        ("agent_rules_file", "agentRulesFile"),
        ("max_sessions", "maxSessions"),
        ("sweep_interval", "sweepInterval"),
    ):
        value = getattr(project, field)
        if value not in ("", None):
            entry[name] = value
    if project.monthly_budget_usd is not None:
        entry["monthlyBudgetUsd"] = float(project.monthly_budget_usd)
    for field, name in (("symlinks", "symlinks"), ("post_create", "postCreate")):
        if getattr(project, field):
            entry[name] = getattr(project, field)
    reactions = dict(project.reactions or {})
    auto_cleanup = reactions.pop(auto_cleanup_key, None)
    if reactions:
        entry["reactions"] = reactions
    if auto_cleanup is not None:
        entry["autoCleanupOnMerge"] = auto_cleanup
    entry["refuseOverCap"] = project.refuse_over_cap
    entry["allowAgentTrust"] = project.allow_agent_trust
    entry["passTokensToAgents"] = project.pass_tokens_to_agents
    if project.credentials != "project":
        entry["credentials"] = project.credentials
    if project.agent_secrets:
        entry["agentSecrets"] = dict(project.agent_secrets)
    orchestrator: dict = {"enabled": project.orchestrator_enabled}
    if project.orchestrator_agent:
        orchestrator["agent"] = _plugin_value(
            project.orchestrator_agent, dict(project.orchestrator_agent_settings or {})
        )
    if project.orchestrator_rules:
        orchestrator["rules"] = project.orchestrator_rules
    if project.orchestrator_rules_file:
        orchestrator["rulesFile"] = project.orchestrator_rules_file
    entry["orchestrator"] = orchestrator
    # intake.enabled is left out: it stays what `ao intake on|off` (or the file) chose.
    entry["intake"] = {
        "label": project.intake_label,
        "inProgressLabel": project.intake_in_progress_label,
        "doneLabel": project.intake_done_label,
    }
    return entry


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    """A project admin grants roles on their own projects only (the project choices are theirs)."""

    form = MembershipAdminForm
    list_display = ("user", "project", "role", "created_at")
    list_filter = ("role", "project")
    search_fields = ("user__username", "project__key")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        grant_staff_for_admin_role(request, obj)


# --- users: memberships and tokens inline ----------------------------------------------------------
class UserMembershipInline(ProjectScopedAdminMixin, admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0


class UserApiTokenInline(admin.TabularInline):
    model = ApiToken
    extra = 0
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # tokens are created from the API tokens page, which shows the raw token once


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class AoUserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    inlines = [UserMembershipInline, UserApiTokenInline]


if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class AoGroupAdmin(AuditedAdminMixin, DjangoGroupAdmin):
    """Django's group admin, audited like the rest."""


# --- API tokens -----------------------------------------------------------------------------------
class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    actions = ["revoke"]
    audit_saves = False  # api_token_create / api_token_revoke record token.create / token.revoke

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_fields(self, request, obj=None):
        return (
            ("user", "name")
            if obj is None
            else ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
        )

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, raw = api_token_create(user=form.cleaned_data["user"], name=form.cleaned_data["name"])
        obj.pk, obj.prefix, obj.token_hash = token.pk, token.prefix, token.token_hash
        obj._state.adding = False
        messages.warning(
            request,
            format_html(
                "API token <b>{}</b> for {}: <code>{}</code> — copy it now, it is not shown again.",
                token.name,
                token.user,
                raw,
            ),
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the audit log keeps referring to it

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = sum(api_token_revoke(token=token) for token in queryset)
        messages.success(request, f"{count} token(s) revoked")


# --- secrets --------------------------------------------------------------------------------------
class SecretForm(forms.ModelForm):
    replace = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The value (write-only: never shown back). Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ("name",)

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("replace"):
            self.add_error("replace", "a new secret needs a value")
        return cleaned


@admin.register(Secret)
class SecretAdmin(AuditedModelAdmin):
    """Write-only: the list and the form show the name and when it changed, never the value."""

    form = SecretForm
    list_display = ("name", "updated_at")
    search_fields = ("name",)
    fields = ("name", "replace", "updated_at")
    readonly_fields = ("updated_at",)
    audit_saves = False  # secrets.secret_set records secret.create / secret.replace

    def get_readonly_fields(self, request, obj=None):
        return ("name", "updated_at") if obj is not None else ("updated_at",)

    def save_model(self, request, obj, form, change):
        value = form.cleaned_data.get("replace")
        if value:
            row = secrets.secret_set(name=obj.name, value=value)
            obj.pk, obj.ciphertext = row.pk, row.ciphertext
            obj._state.adding = False


@admin.register(UserBudget)
class UserBudgetAdmin(AuditedModelAdmin):
    """A person's monthly cost cap across projects (``ao budget``): superusers only."""

    list_display = ("user", "monthly_budget_usd", "updated_at")
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Host)
class HostAdmin(AuditedModelAdmin):
    """Agent hosts (sessions/core/hosts.py), registered by their workers: superusers set who else may
    run sessions on a personal host (``allowed``), its cap, or make it shared."""

    list_display = ("name", "owner", "shared", "max_sessions", "last_seen", "gone_since")
    list_filter = ("shared",)
    search_fields = ("name", "owner__username")
    filter_horizontal = ("allowed",)
    readonly_fields = ("last_seen", "gone_since", "created_at")

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


# --- audit ----------------------------------------------------------------------------------------
@admin.register(AuditEntry)
class AuditEntryAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    list_display = ("at", "actor_kind", "actor_user", "actor_name", "source", "action", "target", "project")
    list_filter = ("actor_kind", "source", "action", "project")
    search_fields = ("action", "target_id", "actor_name", "actor_user__username")
    date_hierarchy = "at"

    @admin.display(description="target")
    def target(self, entry: AuditEntry) -> str:
        return f"{entry.target_type}:{entry.target_id}" if entry.target_type else ""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- sessions and their facts ---------------------------------------------------------------------
@admin.register(Session)
class SessionAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    list_display = ("id", "project", "kind", "status", "zone", "agent", "issue_ref", "created_at")
    list_filter = ("project", "kind", "zone", "status", "agent")
    search_fields = ("id", "issue_ref", "issue_title", "branch")
    # Status and zone are derived from facts by sessions.domain.lifecycle; never edited by hand.
    readonly_fields = ("status", "zone", "status_reason", "status_changed_at", "number")


class CheckRunInline(admin.TabularInline):
    model = CheckRun
    extra = 0


class ReviewThreadInline(admin.TabularInline):
    model = ReviewThread
    extra = 0


@admin.register(PullRequest)
class PullRequestAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    list_display = ("__str__", "session", "state", "ci_state", "review_decision", "mergeable")
    list_filter = ("project", "state", "ci_state", "review_decision")
    inlines = [CheckRunInline, ReviewThreadInline]


@admin.register(Event)
class EventAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    list_display = ("created_at", "project", "session", "kind", "actor", "actor_name", "summary")
    list_filter = ("project", "kind", "actor")
    search_fields = ("summary", "session__id")

    # The timeline is append-only.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    project_path = "session__project"
    list_display = ("created_at", "session", "sender", "state", "attempts")
    list_filter = ("state", "sender")


# --- chat identities and flaky-check flags (sessions/dashboard/chat.py, sessions/watchers/decisions.py) -------------------
from sessions.models import ChatIdentity, FlakyCheck  # noqa: E402 -- kept with the admin classes below


@admin.register(ChatIdentity)
class ChatIdentityAdmin(AuditedModelAdmin):
    """Which Slack or Telegram account is which ao user: only mapped accounts may use chat commands."""

    list_display = ("platform", "external_id", "user", "note", "created_at")
    list_filter = ("platform",)
    search_fields = ("external_id", "user__username", "note")
    autocomplete_fields = ("user",)


@admin.register(FlakyCheck)
class FlakyCheckAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    """Checks that passed and failed on one commit: a failure there still reaches the agent, noted
    as flaky (a re-run may pass). Delete a row to clear the flag."""

    list_display = ("detected_at", "project", "name", "reason", "head_sha", "detail")
    list_filter = ("project", "reason")
    search_fields = ("name", "detail")
    readonly_fields = ("project", "name", "reason", "head_sha", "pull_request", "sessions", "detail")

    def has_add_permission(self, request) -> bool:
        return False


from sessions.dashboard import admin_lockout  # noqa: E402, F401 -- failed logins and lockouts (superusers)
