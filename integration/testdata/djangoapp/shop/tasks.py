import os
import time

from celery import shared_task

from .models import Mark, Tick


@shared_task
def record(token, sleep=0.0):
    Mark.objects.update_or_create(token=token, defaults={"state": "started", "pid": os.getpid()})
    time.sleep(float(sleep))
    Mark.objects.filter(token=token).update(state="done")


@shared_task
def tick():
    Tick.objects.create()
