# A tiny Celery app for supervise's Procfile test. Everything it creates on
# the broker is named after GROUP_QUEUE, unique per test run, so that the
# test can delete it afterwards.
import os
import sys
import time

from celery import Celery

queue = os.environ["GROUP_QUEUE"]
app = Celery("tasks", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    task_default_queue=queue,
    task_default_exchange=queue,
    task_default_routing_key=queue,
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_prefetch_multiplier=1,
    beat_schedule={
        "tick": {"task": "tasks.tick", "schedule": 1.0, "args": [os.environ["GROUP_DIR"]]},
    },
)


@app.task
def slow(path):
    print("slow task started", file=sys.stderr, flush=True)
    time.sleep(2)
    with open(path, "w") as f:
        f.write("done\n")
    print("slow task done", file=sys.stderr, flush=True)


@app.task
def touch(path):
    with open(path, "w") as f:
        f.write("done\n")


@app.task
def tick(directory):
    with open(os.path.join(directory, "ticks"), "a") as f:
        f.write("tick\n")
