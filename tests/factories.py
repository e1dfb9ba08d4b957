"""factory-boy factories for ao's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from reactions.models import ReactionAttempt
from sessions.models import CheckRun, Event, Message, Project, PullRequest, ReviewThread, Session


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("pw-for-tests-only")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    key = factory.Sequence(lambda n: f"proj{n}")
    name = factory.LazyAttribute(lambda p: p.key.title())
    repo = factory.LazyAttribute(lambda p: f"acme/{p.key}")
    path = factory.LazyAttribute(lambda p: f"/srv/repos/{p.key}")
    session_prefix = factory.Sequence(lambda n: f"p{n}")


class SessionFactory(factory.django.DjangoModelFactory):
    """Creates rows directly (ids allocated like the service does); use services for behaviour."""

    class Meta:
        model = Session

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    id = factory.LazyAttribute(lambda s: f"{s.project.session_prefix}-{s.number}")
    agent = "claude-code"
    issue_ref = factory.Sequence(lambda n: str(100 + n))
    issue_title = factory.Sequence(lambda n: f"Fix bug number {n}")
    phase = "running"
    runtime_state = "alive"
    status = "working"
    zone = "working"


class PullRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PullRequest

    session = factory.SubFactory(SessionFactory)
    project = factory.SelfAttribute("session.project")
    number = factory.Sequence(lambda n: n + 1)
    url = factory.LazyAttribute(lambda pr: f"https://github.com/{pr.project.repo}/pull/{pr.number}")
    branch = factory.LazyAttribute(lambda pr: f"feat/issue-{pr.number}")
    base_branch = "main"
    head_sha = factory.Faker("sha1")


class CheckRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CheckRun

    pull_request = factory.SubFactory(PullRequestFactory)
    head_sha = factory.SelfAttribute("pull_request.head_sha")
    name = factory.Sequence(lambda n: f"check-{n}")
    status = "completed"
    conclusion = "success"


class ReviewThreadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewThread

    pull_request = factory.SubFactory(PullRequestFactory)
    external_id = factory.Sequence(lambda n: f"PRRT_{n}")
    path = "src/app.py"
    line = 10
    author = "reviewer"
    author_association = "MEMBER"
    body = "Please rename this."


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    session = factory.SubFactory(SessionFactory)
    project = factory.SelfAttribute("session.project")
    kind = "note"
    summary = "something happened"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    session = factory.SubFactory(SessionFactory)
    text = "please continue"


class ReactionAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReactionAttempt

    session = factory.SubFactory(SessionFactory)
    rule = "ci-failed"
    fingerprint = factory.Faker("sha1")
    attempts = 1
