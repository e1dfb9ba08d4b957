"""``GET /api/v1/projects/<key>/reactions``: the project's reaction rules as they apply now
(ao's defaults, then the config's top-level reactions, then the project's own overrides)."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from reactions import rules
from sessions.api.permissions import project_for
from sessions.api.views import AoAPIView


class ReactionRuleSerializer(serializers.Serializer):
    name = serializers.CharField()
    action = serializers.CharField(help_text="send-to-agent | notify | auto-merge")
    effective_action = serializers.CharField(help_text="what it does now: with auto false, notify")
    auto = serializers.BooleanField()
    priority = serializers.CharField()
    retries = serializers.IntegerField(allow_null=True)
    escalate_after = serializers.CharField(
        allow_null=True, help_text="a count of attempts, or seconds ('1800s')"
    )
    threshold_seconds = serializers.FloatField(allow_null=True)
    message = serializers.CharField(allow_blank=True, help_text="the template; empty: the built-in message")
    trusted_bots = serializers.ListField(child=serializers.CharField())
    include_summary = serializers.BooleanField()


class ReactionRulesSerializer(serializers.Serializer):
    project = serializers.CharField()
    rules = ReactionRuleSerializer(many=True)


def _escalate_after(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    return str(value)


def rule_data(rule: rules.Rule) -> dict:
    return {
        "name": rule.name,
        "action": rule.action,
        "effective_action": rule.effective_action,
        "auto": rule.auto,
        "priority": rule.priority,
        "retries": rule.retries,
        "escalate_after": _escalate_after(rule.escalate_after),
        "threshold_seconds": rule.threshold.total_seconds() if rule.threshold else None,
        "message": rule.message,
        "trusted_bots": list(rule.trusted_bots),
        "include_summary": rule.include_summary,
    }


class ProjectReactionsView(AoAPIView):
    serializer_class = ReactionRulesSerializer

    @extend_schema(operation_id="projects_reactions_retrieve")
    def get(self, request, key: str):
        project = project_for(request, key)
        effective = rules.rules_for(project)
        return Response(
            {"project": project.key, "rules": [rule_data(r) for _, r in sorted(effective.items())]}
        )
