# Reports every signal it receives; exits 0 after TERM, INT or QUIT.
import signal, sys

stop = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}

def name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "signal %d" % n

def report(n, frame):
    print("got", name(n), flush=True)
    if n in stop:
        sys.exit(0)

for s in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}:
    signal.signal(s, report)
print("ready", flush=True)
while True:
    signal.pause()
