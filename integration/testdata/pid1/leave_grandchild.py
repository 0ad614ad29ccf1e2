# Exits 3 as soon as it has started a grandchild that needs a second of
# clean-up on SIGTERM. Run with an argument, it is that grandchild: the
# argument is the pipe it closes once its handler is in place.
import os, signal, subprocess, sys, time

def cleanup(n, frame):
    print("cleanup start", flush=True)
    time.sleep(1)
    print("cleanup done", flush=True)
    sys.exit(0)

if len(sys.argv) > 1:
    signal.signal(signal.SIGTERM, cleanup)
    os.close(int(sys.argv[1]))
    while True:
        signal.pause()

r, w = os.pipe()
subprocess.Popen([sys.executable, __file__, str(w)], pass_fds=(w,))
os.close(w)
os.read(r, 1)  # end of file once the grandchild is ready
print("main exits", flush=True)
sys.exit(3)
