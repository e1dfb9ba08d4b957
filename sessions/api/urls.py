from django.urls import path

from sessions.api import views

urlpatterns = [
    path("sessions/<str:session_id>/report", views.ReportView.as_view(), name="api-session-report"),
    path("sessions/<str:session_id>/pr", views.PullRequestOpenView.as_view(), name="api-session-pr"),
]
