from django.urls import path

from sessions.api import views

urlpatterns = [
    path("sessions/<str:session_id>/report", views.ReportView.as_view(), name="api-session-report"),
]
