from django.urls import path
from payments import views

urlpatterns = [
    path("sponsor/", views.sponsor_info),
    path("sponsor/group/", views.sponsor_group),
]
