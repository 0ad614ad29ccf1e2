from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)
    price = models.IntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)


class Mark(models.Model):
    """Progress of a task or a slow request, written by the process doing the work so
    that a test can see from the database that it started and that it finished."""

    token = models.CharField(max_length=100, unique=True)
    state = models.CharField(max_length=20)
    pid = models.IntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)


class Tick(models.Model):
    created = models.DateTimeField(auto_now_add=True)
