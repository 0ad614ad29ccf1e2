# Ignores SIGTERM, as a wedged or badly written program does.
import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    signal.pause()
