# Sends one task: send.py NAME ARG
import sys

from tasks import app

app.send_task("tasks." + sys.argv[1], args=[sys.argv[2]])
