from django.urls import path

from sessions.dashboard import (
    views_actions,
    views_board,
    views_credentials,
    views_hosts,
    views_orchestrator,
    views_review,
    views_session,
    views_spawn,
    views_tokens,
    views_usage,
)

app_name = "sessions"

urlpatterns = [
    path("", views_board.board, name="index"),
    path("needs-you/", views_board.needs_you, name="needs-you"),
    path("inbox/", views_board.inbox, name="inbox"),
    path("tokens/", views_tokens.tokens, name="tokens"),
    path("credentials/", views_credentials.credentials, name="credentials"),
    path("credentials/<str:name>/delete/", views_credentials.credential_delete, name="credential-delete"),
    path("hosts/", views_hosts.hosts_page, name="hosts"),
    path("hosts/<str:name>/allow/", views_hosts.host_allow, name="host-allow"),
    path("hosts/<str:name>/deny/<str:username>/", views_hosts.host_deny, name="host-deny"),
    path("usage/", views_usage.usage_page, name="usage"),
    path("tokens/<int:pk>/revoke/", views_tokens.token_revoke, name="token-revoke"),
    path("p/<slug:key>/", views_board.project_board, name="project"),
    path("p/<slug:key>/needs-you/", views_board.project_needs_you, name="project-needs-you"),
    path("p/<slug:key>/spawn/", views_spawn.spawn, name="spawn"),
    path("p/<slug:key>/spawn/batch/", views_spawn.spawn_batch, name="spawn-batch"),
    path("p/<slug:key>/issues/add/", views_review.issue_add, name="issue-add"),
    path("p/<slug:key>/orchestrator/", views_orchestrator.orchestrator, name="orchestrator"),
    path(
        "p/<slug:key>/orchestrator/start/",
        views_orchestrator.orchestrator_start_view,
        name="orchestrator-start",
    ),
    path(
        "p/<slug:key>/orchestrator/stop/", views_orchestrator.orchestrator_stop_view, name="orchestrator-stop"
    ),
    path("s/<str:session_id>/", views_session.session_detail, name="detail"),
    path("s/<str:session_id>/timeline/", views_session.session_timeline, name="timeline"),
    path("s/<str:session_id>/send/", views_actions.session_send, name="send"),
    path("s/<str:session_id>/threads/<int:thread_id>/ask/", views_actions.thread_ask_fix, name="ask-fix"),
    path("s/<str:session_id>/kill/", views_actions.session_kill_view, name="kill"),
    path("s/<str:session_id>/restore/", views_actions.session_restore_view, name="restore"),
    path("s/<str:session_id>/merge/", views_actions.session_merge, name="merge"),
    path("s/<str:session_id>/review/", views_review.session_review, name="review"),
]
