"""Dashboard forms: parse and validate what a person typed; the services do the rest."""

from __future__ import annotations

from django import forms

from integrations.registry import registry_for
from sessions.agents import issues

QUICK_REPLIES = ("continue", "run the tests", "open a PR")


def agent_keys() -> list[str]:
    return sorted(registry_for("agent").keys())


class SpawnForm(forms.Form):
    issue = forms.CharField(
        required=False,
        max_length=100,
        label="Issue",
        help_text="an issue reference from the tracker, e.g. 42 or ENG-12",
        widget=forms.TextInput(attrs={"placeholder": "42", "list": "backlog-refs", "autocomplete": "off"}),
    )
    prompt = forms.CharField(
        required=False,
        label="Prompt",
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "What should the agent do?"}),
    )
    agent = forms.ChoiceField(required=False, label="Agent")
    branch = forms.CharField(required=False, max_length=255, label="Branch (optional)")
    host = forms.ChoiceField(
        required=False,
        label="Agent host",
        help_text="where the agent runs: yours first, then hosts you are allowed on, then shared ones",
    )

    def __init__(
        self,
        *args,
        agents: list[str] | None = None,
        default_agent: str = "",
        hosts: list[tuple[str, str]] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.fields["host"].choices = [("", "automatic (the first with room)"), *(hosts or [])]
        choices = [(key, key) for key in (agents or [])]
        if default_agent and default_agent not in dict(choices):
            choices.insert(0, (default_agent, default_agent))
        self.fields["agent"].choices = [
            ("", f"project default ({default_agent})" if default_agent else "default"),
            *choices,
        ]

    def clean(self):
        data = super().clean()
        if not (data.get("issue") or "").strip() and not (data.get("prompt") or "").strip():
            raise forms.ValidationError("Pick an issue or write a prompt.")
        return data


class BatchSpawnForm(forms.Form):
    agent = forms.CharField(required=False, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.issues = [ref.strip() for ref in self.data.getlist("issues") if ref.strip()] if self.data else []

    def clean(self):
        data = super().clean()
        if not self.issues:
            raise forms.ValidationError("Tick at least one issue to spawn.")
        if len(self.issues) > 50:
            raise forms.ValidationError("At most 50 issues at a time.")
        return data


class MessageForm(forms.Form):
    text = forms.CharField(
        label="Message",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Tell the agent what to do next"}),
        strip=False,
    )
    answers_prompt = forms.BooleanField(required=False, label="This answers the agent's permission prompt")


class ReviewForm(forms.Form):
    """A review of a `local` PR from the session page: Approve or Request changes (which needs a comment)."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("request_changes", "Request changes")])
    body = forms.CharField(required=False, max_length=65536, label="Comment")

    def clean(self):
        data = super().clean()
        if data.get("decision") == "request_changes" and not (data.get("body") or "").strip():
            raise forms.ValidationError("Requesting changes needs a comment saying what to change.")
        return data


class IssueForm(forms.Form):
    """A new issue in the project's `local` tracker, from the spawn page."""

    title = forms.CharField(
        max_length=issues.ISSUE_TITLE_MAX_CHARS,
        label="Title",
        widget=forms.TextInput(attrs={"placeholder": "Add dark mode"}),
    )
    body = forms.CharField(
        required=False,
        max_length=issues.ISSUE_BODY_MAX_CHARS,
        label="Description (optional)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    labels = forms.CharField(
        required=False,
        max_length=500,
        label="Labels (optional)",
        help_text="comma-separated",
        widget=forms.TextInput(attrs={"placeholder": "ui, agent:backlog"}),
    )

    def clean_title(self) -> str:
        return " ".join(self.cleaned_data["title"].split())

    def clean_labels(self) -> list[str]:
        labels = [label.strip() for label in self.cleaned_data["labels"].split(",")]
        labels = list(dict.fromkeys(label for label in labels if label))
        if len(labels) > 20 or any(len(label) > 50 for label in labels):
            raise forms.ValidationError("At most 20 labels of at most 50 characters each.")
        return labels
