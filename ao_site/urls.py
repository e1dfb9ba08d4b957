from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from sessions.dashboard import views_auth, views_hooks


def favicon(request):
    """Browsers ask for /favicon.ico on every page that names no icon (the admin's)."""
    return redirect(static("ao/favicon.svg"), permanent=True)


# The apps' admin modules register their ModelAdmins now, before admin.site.urls reads them
# (they do not load while Django sets up: ao_site/admin_app.py).
admin.autodiscover()

urlpatterns = [
    path("favicon.ico", favicon),
    path("healthz", views_hooks.healthz, name="healthz"),
    path("webhooks/github/<str:project_key>", views_hooks.github_webhook, name="github-webhook"),
    path("internal/realtime", views_hooks.realtime_relay, name="realtime-relay"),  # realtime.RELAY_PATH
    path("admin/", admin.site.urls),
    path("api/v1/", include("sessions.api.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/one-time/", views_auth.one_time_login_confirm, name="one_time_login_confirm"),
    path("accounts/one-time/<uidb64>/<token>/", views_auth.one_time_login, name="one_time_login"),
    path("", include("sessions.dashboard.urls_learning")),  # retro page + lesson decisions
    path("chat/", include("sessions.dashboard.urls_chat")),
    path("", include("sessions.urls")),
]

handler404 = "ao_site.errors.not_found"
handler500 = "ao_site.errors.server_error"
