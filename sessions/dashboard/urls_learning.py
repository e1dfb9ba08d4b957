from django.urls import path

from sessions.dashboard import views_learning

app_name = "learning"

urlpatterns = [
    path("p/<slug:key>/retro/", views_learning.retro, name="retro"),
    path("p/<slug:key>/lessons/<int:lesson_id>/decide/", views_learning.lesson_decide, name="lesson-decide"),
]
