# Reports every signal it receives; exits 0 after TERM, INT or QUIT. It
# writes with os.write: a signal may arrive while print still holds stdout.
import os, signal, sys

stop = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}

def say(s):
    os.write(1, (s + "\n").encode())

def name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "signal %d" % n

def report(n, frame):
    say("got " + name(n))
    if n in stop:
        sys.exit(0)

for s in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}:
    signal.signal(s, report)
say("ready")
while True:
    signal.pause()
