from django.contrib import admin

from reactions.models import ReactionAttempt


@admin.register(ReactionAttempt)
class ReactionAttemptAdmin(admin.ModelAdmin):
    list_display = ("session", "rule", "fingerprint", "attempts", "escalated", "last_at")
    list_filter = ("rule", "escalated")
