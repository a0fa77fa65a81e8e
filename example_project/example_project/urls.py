from django.urls import path
from payments import views

urlpatterns = [path("sponsor/", views.sponsor_info)]
