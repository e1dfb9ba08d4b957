from django.contrib import admin

from sessions.models import CheckRun, Event, Message, Project, PullRequest, ReviewThread, Session


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("key", "repo", "session_prefix", "agent", "runtime", "tracker", "scm", "max_sessions")
    search_fields = ("key", "repo", "path")


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "kind", "status", "zone", "agent", "issue_ref", "created_at")
    list_filter = ("project", "kind", "zone", "status", "agent")
    search_fields = ("id", "issue_ref", "issue_title", "branch")
    # Status and zone are derived from facts by sessions.lifecycle; never edited by hand.
    readonly_fields = ("status", "zone", "status_reason", "status_changed_at", "number")


class CheckRunInline(admin.TabularInline):
    model = CheckRun
    extra = 0


class ReviewThreadInline(admin.TabularInline):
    model = ReviewThread
    extra = 0


@admin.register(PullRequest)
class PullRequestAdmin(admin.ModelAdmin):
    list_display = ("__str__", "session", "state", "ci_state", "review_decision", "mergeable")
    list_filter = ("project", "state", "ci_state", "review_decision")
    inlines = [CheckRunInline, ReviewThreadInline]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "project", "session", "kind", "actor", "actor_name", "summary")
    list_filter = ("project", "kind", "actor")
    search_fields = ("summary", "session__id")

    # The timeline is append-only.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "session", "sender", "state", "attempts")
    list_filter = ("state", "sender")
