"""``GET /api/v1/usage``: tokens and cost per person, agent and model, project and day or week, of
the projects you can see, with the monthly budgets you may see (``sessions.core.usage``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from sessions.api.views import AoAPIView
from sessions.core import selectors, usage


class UsageQuerySerializer(serializers.Serializer):
    since = serializers.CharField(
        required=False, default="30d", max_length=40, help_text="7d, 12h, 2w, an ISO date, or all"
    )
    bucket = serializers.ChoiceField(choices=usage.BUCKETS, required=False, default="day")
    project = serializers.CharField(required=False, max_length=63, help_text="only this project")


class UsageTotalsSerializer(serializers.Serializer):
    sessions = serializers.IntegerField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class UsageUserSerializer(UsageTotalsSerializer):
    user = serializers.CharField(allow_blank=True, help_text="who spawned them; empty: ao itself")
    name = serializers.CharField()


class UsageModelSerializer(UsageTotalsSerializer):
    agent = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    name = serializers.CharField(help_text="agent/model")


class UsageProjectSerializer(UsageTotalsSerializer):
    project = serializers.CharField()
    name = serializers.CharField()


class UsagePeriodSerializer(UsageTotalsSerializer):
    period = serializers.DateField(help_text="the UTC day, or the Monday of the week")
    projects = serializers.DictField(child=UsageTotalsSerializer(), help_text="per project key")


class BudgetSerializer(serializers.Serializer):
    scope = serializers.CharField(help_text="project | user")
    name = serializers.CharField()
    month = serializers.CharField(help_text="YYYY-MM (UTC)")
    monthly_budget_usd = serializers.FloatField()
    spent_usd = serializers.FloatField()
    used_pct = serializers.IntegerField()
    over = serializers.BooleanField(help_text="spawns are refused")


class UsageSerializer(serializers.Serializer):
    window = serializers.CharField()
    project = serializers.CharField(allow_null=True)
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField()
    bucket = serializers.CharField()
    totals = UsageTotalsSerializer()
    by_user = UsageUserSerializer(many=True)
    by_agent_model = UsageModelSerializer(many=True)
    by_project = UsageProjectSerializer(many=True)
    over_time = UsagePeriodSerializer(many=True)
    budgets = BudgetSerializer(many=True)


class UsageView(AoAPIView):
    """Tokens and cost of the sessions spawned in the window (each counts on the day it was
    spawned), per person, agent and model, project and period; and the monthly budgets."""

    serializer_class = UsageSerializer

    @extend_schema(operation_id="usage", parameters=[UsageQuerySerializer], responses=UsageSerializer)
    def get(self, request):
        query = self.query(UsageQuerySerializer)
        try:
            data = usage.usage_for(
                user=request.user,
                since=query["since"],
                bucket=query["bucket"],
                project_key=query.get("project"),
            )
        except selectors.NotFound as exc:
            raise NotFound(str(exc)) from exc
        except ValueError as exc:
            raise ValidationError({"since": [str(exc)]}) from exc
        return Response(data)
