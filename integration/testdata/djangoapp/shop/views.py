import os
import time

import redis
from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse

from .models import Item, Mark, Tick
from .tasks import record

# Django 3.2 has no Redis cache backend, so the view talks to Redis with redis-py.
_redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


def index(request):
    return JsonResponse({"ok": True, "pid": os.getpid()})


def db(request):
    Item.objects.create(name="visit", price=1)
    hits = _redis.incr("djangoapp:%s:hits" % settings.CELERY_TASK_DEFAULT_QUEUE)
    return JsonResponse({"items": Item.objects.count(), "hits": hits})


def enqueue(request):
    token = request.GET.get("token")
    if not token:
        return HttpResponseBadRequest("token missing")
    record.delay(token, float(request.GET.get("sleep", "0")))
    return JsonResponse({"queued": token})


def result(request):
    mark = Mark.objects.filter(token=request.GET.get("token", "")).first()
    if mark is None:
        return JsonResponse({"state": None})
    return JsonResponse({"state": mark.state, "pid": mark.pid})


def slow(request):
    """Sleeps ?sleep= seconds; with ?token= it records its progress like a task."""
    token = request.GET.get("token")
    if token:
        Mark.objects.update_or_create(token=token, defaults={"state": "started", "pid": os.getpid()})
    time.sleep(float(request.GET.get("sleep", "2")))
    if token:
        Mark.objects.filter(token=token).update(state="done")
    return JsonResponse({"slept": True})


def ticks(request):
    return JsonResponse({"ticks": Tick.objects.count()})
