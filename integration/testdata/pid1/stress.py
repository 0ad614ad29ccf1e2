# Main process for the reaping tests: runs CHILDREN children with known exit
# statuses while shells leave ORPHANS orphans behind for entry to reap,
# checks every status, waits for the namespace to empty and reports what is
# left, then exits with CODE while a last few orphans are still alive.
import os, subprocess, sys, threading, time

children, orphans, code = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def orphan_maker(delay):
    # The shell exits at once; its five sleeps are re-parented to entry.
    return subprocess.Popen(["/bin/sh", "-c", ("sleep %.2f & " % delay) * 5 + "exit"])

def make_orphans():
    # A few shells at a time, so that orphans keep coming while the
    # children run.
    running = []
    for i in range(orphans // 5):
        running.append(orphan_maker(0.01 + (i % 5) / 100))
        if len(running) == 4:
            running.pop(0).wait()
    for p in running:
        p.wait()

def ancestors():
    pids, pid = {os.getpid()}, os.getpid()
    while pid > 1:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
        pids.add(pid)
    return pids

def others(mine):
    # Processes in the namespace other than this one and its ancestors
    # (entry, and tini above it), and how many of them are zombies.
    n = z = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in mine:
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                stat = f.read()
        except OSError:
            continue  # reaped while we looked
        n += 1
        if stat[stat.rindex(")") + 2] == "Z":
            z += 1
    return n, z

mine = ancestors()
maker = threading.Thread(target=make_orphans)
start = time.monotonic()
maker.start()
lost = 0
for i in range(children):
    want = i % 256
    got = subprocess.run(["/bin/sh", "-c", "exit %d" % want]).returncode
    if got != want:
        print("child %d: status %d, want %d" % (i, got, want), flush=True)
        lost += 1
maker.join()
took = time.monotonic() - start

# The last orphans die within 50 ms and entry reaps each as it dies: poll
# until the namespace is empty, up to a deadline.
deadline = time.monotonic() + 10
left, zombies = others(mine)
while left and time.monotonic() < deadline:
    time.sleep(0.01)
    left, zombies = others(mine)
print("result children=%d lost=%d orphans=%d left=%d zombies=%d seconds=%.1f"
      % (children, lost, orphans, left, zombies, took), flush=True)
orphan_maker(0.05).wait()
sys.exit(code)
