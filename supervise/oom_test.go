package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func v2Events(kills int) string {
	return "low 0\nhigh 0\nmax 12\noom 3\noom_kill " + itoa(kills) + "\noom_group_kill 0\n"
}

func v1Control(kills int) string {
	return "oom_kill_disable 0\nunder_oom 0\noom_kill " + itoa(kills) + "\n"
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestOOMWatchV2(t *testing.T) {
	mnt := t.TempDir()
	dir := filepath.Join(mnt, "system.slice", "docker-abc.scope")
	write(t, filepath.Join(mnt, "cgroup.controllers"), "cpu memory pids\n")
	write(t, filepath.Join(dir, "memory.events"), v2Events(0))
	write(t, filepath.Join(dir, "memory.max"), "max\n")
	write(t, filepath.Join(mnt, "system.slice", "memory.max"), "67108864\n")
	w, err := NewOOMWatch("0::/system.slice/docker-abc.scope\n", mnt)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), "v2") {
		t.Errorf("String() = %s", w)
	}
	m := w.Snapshot()
	killed := Exit{Pid: 7, Signal: syscall.SIGKILL}
	if got := w.DeathCause(killed, m); !strings.HasPrefix(got, "cause unknown") {
		t.Errorf("no kill yet: %q", got)
	}
	write(t, filepath.Join(dir, "memory.events"), v2Events(1))
	if ok, lim := w.KilledSince(m); !ok || lim != 64<<20 {
		t.Errorf("KilledSince = %v, %d; want true and the parent's 64 MiB", ok, lim)
	}
	if got := w.DeathCause(killed, m); got != "OOM-killed (memory limit 64 MiB)" {
		t.Errorf("DeathCause = %q", got)
	}
	// A shell reports its child's SIGKILL as 137.
	if got := w.DeathCause(Exit{Code: 137}, m); !strings.HasPrefix(got, "OOM-killed") {
		t.Errorf("137: %q", got)
	}
	for _, e := range []Exit{{Code: 1}, {Signal: syscall.SIGSEGV}, {Code: 0}} {
		if got := w.DeathCause(e, m); got != "" {
			t.Errorf("%s: cause %q, want none", e, got)
		}
	}
	if w.DeathCause(killed, w.Snapshot()) == "OOM-killed (memory limit 64 MiB)" {
		t.Errorf("a kill before the mark counts")
	}
}

func TestOOMWatchV1HybridAndNamespace(t *testing.T) {
	mnt := t.TempDir()
	write(t, filepath.Join(mnt, "memory", "memory.oom_control"), v1Control(2))
	write(t, filepath.Join(mnt, "memory", "memory.limit_in_bytes"), "9223372036854771712\n")
	// The path of the host's view is missing in the container: its own
	// cgroup is the mount point.
	proc := "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n"
	w, err := NewOOMWatch(proc, mnt)
	if err != nil {
		t.Fatal(err)
	}
	if w.dir != filepath.Join(mnt, "memory") || w.v2 {
		t.Fatalf("found %s", w)
	}
	m := w.Snapshot()
	write(t, filepath.Join(mnt, "memory", "memory.oom_control"), v1Control(3))
	if got := w.DeathCause(Exit{Signal: syscall.SIGKILL}, m); got != "OOM-killed (no memory limit: the host ran out of memory)" {
		t.Errorf("DeathCause = %q", got)
	}
	// With its own directory, v1 combined controllers.
	write(t, filepath.Join(mnt, "memory", "job", "memory.oom_control"), v1Control(0))
	write(t, filepath.Join(mnt, "memory", "job", "memory.limit_in_bytes"), "10485760\n")
	w, err = NewOOMWatch("4:memory,hugetlb:/job\n", mnt)
	if err != nil || w.dir != filepath.Join(mnt, "memory", "job") {
		t.Fatalf("%v, %v", w, err)
	}
	m = w.Snapshot()
	write(t, filepath.Join(mnt, "memory", "job", "memory.oom_control"), v1Control(1))
	if got := w.DeathCause(Exit{Signal: syscall.SIGKILL}, m); got != "OOM-killed (memory limit 10 MiB)" {
		t.Errorf("DeathCause = %q", got)
	}
}

func TestOOMWatchMissing(t *testing.T) {
	if _, err := NewOOMWatch("1:cpu:/\n", t.TempDir()); err == nil {
		t.Errorf("no memory controller: no error")
	}
	if _, err := NewOOMWatch("0::/x\n", t.TempDir()); err == nil {
		t.Errorf("no memory.events: no error")
	}
	var w *OOMWatch
	if got := w.DeathCause(Exit{Signal: syscall.SIGKILL}, w.Snapshot()); !strings.HasPrefix(got, "cause unknown") {
		t.Errorf("nil watch: %q", got)
	}
}

func TestFindOOMWatchHere(t *testing.T) {
	// The machines running these tests have a memory cgroup (v1 or v2).
	w, err := FindOOMWatch()
	if err != nil {
		t.Fatal(err)
	}
	if !w.Snapshot().ok {
		t.Fatalf("%s: no OOM-kill count", w)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 64 << 20: "64 MiB", 1536 << 20: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIncidentsExplainAndReport(t *testing.T) {
	mnt := t.TempDir()
	dir := filepath.Join(mnt, "memory")
	write(t, filepath.Join(dir, "memory.oom_control"), v1Control(0))
	write(t, filepath.Join(dir, "memory.limit_in_bytes"), "33554432\n")
	w, err := NewOOMWatch("4:memory:/\n", mnt)
	if err != nil {
		t.Fatal(err)
	}
	var got []Incident
	in := &Incidents{OOM: w, Report: func(i Incident) { got = append(got, i) }}
	in.started("worker.1")
	wr := in.Writer("worker.1")
	wr.Write([]byte("loading model\nallocating"))
	wr.Write([]byte(" 200 MiB\r\n"))
	write(t, filepath.Join(dir, "memory.oom_control"), v1Control(1))
	e := in.exited("worker.1", Exit{Pid: 9, Signal: syscall.SIGKILL}, false)
	if e.String() != "killed by SIGKILL: OOM-killed (memory limit 32 MiB)" {
		t.Errorf("exit: %s", e)
	}
	// Sent by entry: neither explained nor reported.
	if e := in.exited("web.1", Exit{Signal: syscall.SIGKILL}, true); e.Cause != "" {
		t.Errorf("entry's own SIGKILL explained: %s", e)
	}
	in.exited("web.1", Exit{Code: 1}, false)
	if len(got) != 1 || got[0].Kind != IncidentKilled || got[0].Process != "worker.1" {
		t.Fatalf("incidents: %+v", got)
	}
	if l := got[0].Lines; len(l) != 2 || l[1] != "allocating 200 MiB" {
		t.Errorf("lines: %q", l)
	}
	in.crashLoop("web.1", Exit{Code: 1}, "web.1 is crash-looping")
	if len(got) != 2 || got[1].Kind != IncidentCrashLoop || len(got[1].Exits) != 2 {
		t.Errorf("crash loop: %+v", got)
	}
	var none *Incidents
	none.started("x")
	if e := none.exited("x", Exit{Signal: syscall.SIGKILL}, false); e.Cause != "" {
		t.Errorf("nil Incidents explained %s", e)
	}
}

// TestIncidentsWatch: a kill that an exit explains is not reported again; one that none
// explains within the settle time is reported once.
func TestIncidentsWatch(t *testing.T) {
	mnt := t.TempDir()
	dir := filepath.Join(mnt, "memory")
	write(t, filepath.Join(dir, "memory.oom_control"), v1Control(0))
	write(t, filepath.Join(dir, "memory.limit_in_bytes"), "33554432\n")
	w, err := NewOOMWatch("4:memory:/\n", mnt)
	if err != nil {
		t.Fatal(err)
	}
	in := &Incidents{OOM: w}
	got := make(chan uint64, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := in.Watch(ctx, time.Millisecond, time.Second, func(n uint64, limit int64) {
		if limit != 32<<20 {
			t.Errorf("limit %d", limit)
		}
		got <- n
	})
	// Explained: a process's own OOM kill.
	in.started("web.1")
	write(t, filepath.Join(dir, "memory.oom_control"), v1Control(1))
	if e := in.exited("web.1", Exit{Signal: syscall.SIGKILL}, false); !strings.HasPrefix(e.Cause, "OOM-killed") {
		t.Fatalf("not explained: %s", e)
	}
	// Unexplained: a worker below a master that lives on.
	write(t, filepath.Join(dir, "memory.oom_control"), v1Control(3))
	select {
	case n := <-got:
		if n != 2 {
			t.Errorf("reported %d kills, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the unexplained kills were never reported")
	}
	cancel()
	<-done
	write(t, filepath.Join(dir, "memory.oom_control"), v1Control(4))
	if why := in.Explain(Exit{Code: 137}, OOMMark{kills: 3, ok: true}); !strings.HasPrefix(why, "OOM-killed") || in.seen != 4 {
		t.Errorf("Explain: %q, seen %d", why, in.seen)
	}
}
