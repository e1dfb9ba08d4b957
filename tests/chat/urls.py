"""ao's URLs with the chat endpoints included (until ao_site/urls.py includes sessions.dashboard.urls_chat)."""

from django.urls import include, path

from ao_site.urls import urlpatterns as site_patterns

urlpatterns = [path("chat/", include("sessions.dashboard.urls_chat")), *site_patterns]
