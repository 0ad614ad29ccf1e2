from django.urls import path

from shop import views

urlpatterns = [
    path("", views.index),
    path("db/", views.db),
    path("enqueue/", views.enqueue),
    path("result/", views.result),
    path("slow/", views.slow),
    path("ticks/", views.ticks),
]
