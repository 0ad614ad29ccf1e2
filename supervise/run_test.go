package supervise

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
)

func TestStartErrorStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{exec.ErrNotFound, 127},
		{&os.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOENT}, 127},
		{&os.PathError{Op: "fork/exec", Path: "/x", Err: syscall.EACCES}, 126},
		{&os.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOEXEC}, 126},
	}
	for _, tt := range tests {
		e := &StartError{Path: "/x", Err: tt.err}
		if got := e.Status(); got != tt.want {
			t.Errorf("StartError{%v}.Status() = %d, want %d", tt.err, got, tt.want)
		}
		if !errors.Is(e, tt.err) {
			t.Errorf("errors.Is(StartError{%v}, %v) = false", tt.err, tt.err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		argv []string
		want int
	}{
		{"kill TERM", []string{"sh", "-c", "kill -TERM $$"}, 143},
		{"kill USR1", []string{"sh", "-c", "kill -USR1 $$"}, 138},
		{"kill KILL", []string{"sh", "-c", "kill -KILL $$"}, 137},
		{"missing", []string{"/nonexistent/program"}, 127},
		{"not in PATH", []string{"no-such-program-for-entry"}, 127},
		{"not executable", []string{noexec}, 126},
		{"directory", []string{dir}, 126},
	}
	for _, code := range []int{0, 1, 2, 3, 42, 64, 78, 125, 126, 127, 128, 129, 200, 254, 255} {
		tests = append(tests, struct {
			name string
			argv []string
			want int
		}{fmt.Sprintf("exit %d", code), []string{"sh", "-c", fmt.Sprintf("exit %d", code)}, code})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, namespaced(pid1Argv(nil, tt.argv...)...)...)
			if got := p.wait(20 * time.Second); got != tt.want {
				t.Errorf("status of %q = %d, want %d; output:\n%s", tt.argv, got, tt.want, p.output())
			}
		})
	}
}

// Each signal a user or gunicorn cares about, sent to PID 1 from outside
// the namespace, reaches the child, sent by PID 1; the SIGURG the busy Go
// runtime sends itself never does.
func TestSignalsReachChild(t *testing.T) {
	t.Parallel()
	p := start(t, namespaced(pid1Argv([]string{"-busy", "-timeout", "30s"}, "/usr/bin/python3", "-c", reportSignals)...)...)
	p.expect("^pid1 up", 10*time.Second)
	pid1 := p.pid1()
	p.expectAll(20*time.Second, "^ready$", "^pid1 has sent itself SIGURG")
	for _, sig := range []syscall.Signal{
		syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU,
		syscall.SIGWINCH, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	} {
		if err := syscall.Kill(pid1, sig); err != nil {
			t.Fatal(err)
		}
		m := p.expect("^got (SIG[A-Z0-9]+) from ([0-9]+)$", 10*time.Second)
		if m[1] != SignalName(sig) || m[2] != "1" {
			t.Errorf("child got %s from %s, want %s from 1", m[1], m[2], SignalName(sig))
		}
	}
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
	out := p.output()
	if strings.Contains(out, "got SIGURG") || strings.Contains(out, "pending SIGURG") {
		t.Errorf("SIGURG reached the child; output:\n%s", out)
	}
	// INT came first, so it is the one that asked to stop.
	if !strings.Contains(out, "stop=interrupt") {
		t.Errorf("stop signal not reported as SIGINT; output:\n%s", out)
	}
}

// The child starts with no blocked and no ignored signal, even when entry
// itself was started with some (catatonit blocks TSTP, TTIN and TTOU; a
// shell's background job ignores INT and QUIT).
func TestChildSignalState(t *testing.T) {
	t.Parallel()
	const dirty = `
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(s, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])
`
	argv := pid1Argv(nil, "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status")
	p := start(t, namespaced(append([]string{"/usr/bin/python3", "-c", dirty}, argv...)...)...)
	for range 2 {
		m := p.expect(`^(Sig\w+):\s+(\w+)`, 10*time.Second)
		if n, err := strconv.ParseUint(m[2], 16, 64); err != nil || n != 0 {
			t.Errorf("child %s = %s, want 0", m[1], m[2])
		}
	}
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	p := start(t, namespaced(pid1Argv([]string{"-timeout", timeout.String()}, child("ignore-term")...)...)...)
	p.expect("^pid1 up", 10*time.Second)
	pid1 := p.pid1()
	p.expect("^ready$", 10*time.Second)
	sent := time.Now()
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := p.wait(10 * time.Second); got != 137 {
		t.Errorf("status = %d, want 137", got)
	}
	if took := time.Since(sent); took < timeout {
		t.Errorf("killed after %v, before the %v timeout", took, timeout)
	}
	if out := p.output(); !strings.Contains(out, "did not exit in time, sending SIGKILL") {
		t.Errorf("log does not say the main process was killed; output:\n%s", out)
	}
}

// A grandchild left behind gets SIGTERM once the main process exits, may
// finish a second of clean-up, and Run returns right after it, well before
// the stop timeout.
func TestLeftoverGetsGrace(t *testing.T) {
	t.Parallel()
	for _, ns := range []bool{true, false} {
		t.Run(fmt.Sprintf("pid1=%v", ns), func(t *testing.T) {
			t.Parallel()
			argv := pid1Argv([]string{"-timeout", "20s"}, child("leave-grandchild")...)
			if ns {
				argv = namespaced(argv...)
			}
			p := start(t, argv...)
			p.expect("^ready$", 10*time.Second)
			exited := time.Now()
			p.expect("^cleanup done$", 10*time.Second)
			if got := p.wait(10 * time.Second); got != 3 {
				t.Errorf("status = %d, want 3", got)
			}
			if took := time.Since(exited); took > 10*time.Second {
				t.Errorf("returned %v after the main process exited, want about 1s", took)
			}
			if out := p.output(); !strings.Contains(out, "stopping leftover processes") {
				t.Errorf("log does not mention the leftover; output:\n%s", out)
			}
		})
	}
}

// A process put in the namespace from outside (docker exec, a Kubernetes
// exec probe) is not a leftover: the clean-up after a release step leaves
// it alone.
func TestExecdProcessSpared(t *testing.T) {
	t.Parallel()
	p := start(t, namespaced(pid1Argv([]string{"-release", "read x"}, "/usr/bin/python3", "-c", reportSignals)...)...)
	p.expect("^pid1 up", 10*time.Second)
	probe := start(t, "nsenter", "--target", strconv.Itoa(p.pid1()), "--pid", "--mount", "--",
		"/usr/bin/python3", "-c", reportSignals)
	probe.expect("^ready$", 10*time.Second)
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	p.expect("^ready$", 10*time.Second) // the main process, after the release step
	var reporter int
	for _, d := range mustDescendants(probe.cmd.Process.Pid) {
		reporter = d.pid
	}
	if reporter == 0 {
		t.Fatalf("exec'd process is gone; its output:\n%s", probe.output())
	}
	if err := syscall.Kill(reporter, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if m := probe.expect("^got (SIG[A-Z0-9]+)", 10*time.Second); m[1] != "SIGUSR1" {
		t.Errorf("exec'd process got %s, want nothing before SIGUSR1", m[1])
	}
	if err := syscall.Kill(p.pid1(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
}

// Cancelling the context (a release step whose lock was lost) stops the
// main process with the stop signal.
func TestCancelStops(t *testing.T) {
	t.Parallel()
	p := start(t, namespaced(pid1Argv([]string{"-cancel-on-eof"}, "/usr/bin/python3", "-c", reportSignals)...)...)
	p.expect("^ready$", 10*time.Second)
	p.stdin.Close()
	p.expect("^got SIGTERM from 1$", 10*time.Second)
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
	if out := p.output(); !strings.Contains(out, "reason=cancelled") || !strings.Contains(out, "stop=<nil>") {
		t.Errorf("log does not say the stop came from cancellation; output:\n%s", out)
	}
}

// 1,000 children exit with known statuses while 5,000 orphans are reaped
// by the same loop; none is lost and no zombie is left.
func TestReaperStress(t *testing.T) {
	t.Parallel()
	p := start(t, namespaced(pid1Argv([]string{"-stress", "1000"})...)...)
	m := p.expect(`^stress children=(\d+) lost=(\d+) orphans=(\d+) zombies=(\d+)$`, 60*time.Second)
	if m[2] != "0" || m[4] != "0" {
		t.Errorf("lost %s of %s statuses, %s zombies left; want 0, 0; output:\n%s", m[2], m[1], m[4], p.output())
	}
	if n, _ := strconv.Atoi(m[3]); n == 0 {
		t.Errorf("no orphan reaped, want some")
	}
	t.Logf("children=%s orphans reaped=%s", m[1], m[3])
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
}

// As PID 2 under tini, entry is the subreaper: the orphans come to it.
func TestSubreaperUnderTini(t *testing.T) {
	t.Parallel()
	p := start(t, namespaced(append([]string{"tini", "--"}, pid1Argv(nil, child("orphans", "50")...)...)...)...)
	m := p.expect(`^result status=(\d+) stop=\S+ orphans=(\d+) zombies=(\d+) pidfds=\d+$`, 20*time.Second)
	if m[1] != "0" || m[2] != "50" || m[3] != "0" {
		t.Errorf("status=%s orphans=%s zombies=%s, want 0, 50, 0; output:\n%s", m[1], m[2], m[3], p.output())
	}
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
}

// Under a terminal the child owns the foreground: bash has job control,
// Ctrl-C ends its foreground job and not entry, and exit 0 gives 0. A
// release step that had the terminal before gives it back.
func TestTerminal(t *testing.T) {
	t.Parallel()
	argv := namespaced(pid1Argv([]string{"-release", "true"}, "bash", "--norc", "-i")...)
	p := start(t, "script", "-qec", strings.Join(argv, " "), "/dev/null")
	type_ := func(s string) {
		if _, err := io.WriteString(p.stdin, s); err != nil {
			t.Fatal(err)
		}
	}
	type_("echo flags=$-\n")
	if m := p.expect(`flags=(\w+)`, 10*time.Second); !strings.Contains(m[1], "m") {
		t.Errorf("bash flags %q, want job control (m)", m[1])
	}
	type_("sleep 100\n")
	var sleep int
	eventually(t, 10*time.Second, "sleep in the foreground", func() bool {
		sleep = proctest.Foreground(p.cmd.Process.Pid, "sleep")
		return sleep != 0
	})
	type_("\x03")
	type_("echo rc=$?\n")
	if m := p.expect(`rc=(\d+)$`, 10*time.Second); m[1] != "130" {
		t.Errorf("status of the interrupted sleep = %s, want 130", m[1])
	}
	type_("exit 0\n")
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0", got)
	}
	if out := p.output(); strings.Contains(out, "stopping main process") {
		t.Errorf("Ctrl-C reached entry; output:\n%s", out)
	}
}

const gunicornApp = `
import time
def app(environ, start_response):
    body = b"ok"
    if environ["PATH_INFO"] == "/slow":
        print("slow request started", flush=True)
        time.sleep(1.5)
        body = b"done"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
`

// Real gunicorn under entry: TTIN adds a worker, HUP replaces the workers,
// TERM lets an in-flight request finish and gunicorn exits 0.
func TestGunicorn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(gunicornApp), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := throwaway.FreeAddr(t)
	p := start(t, namespaced(pid1Argv([]string{"-timeout", "20s"},
		"/usr/bin/gunicorn", "--chdir", dir, "--bind", addr, "--workers", "1", "app:app")...)...)
	p.expect("^pid1 up", 10*time.Second)
	pid1 := p.pid1()
	workers := func() map[int]bool {
		var master int
		ws := map[int]bool{}
		for _, d := range mustDescendants(pid1) {
			switch {
			case d.ppid == pid1:
				master = d.pid
			case d.ppid == master && master != 0:
				ws[d.pid] = true
			}
		}
		return ws
	}
	url := "http://" + addr
	eventually(t, 20*time.Second, "gunicorn serving", func() bool {
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	eventually(t, 10*time.Second, "one worker", func() bool { return len(workers()) == 1 })

	if err := syscall.Kill(pid1, syscall.SIGTTIN); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "two workers after SIGTTIN", func() bool { return len(workers()) == 2 })

	old := workers()
	if err := syscall.Kill(pid1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "workers replaced after SIGHUP", func() bool {
		ws := workers()
		for w := range ws {
			if old[w] {
				return false
			}
		}
		return len(ws) > 0
	})

	replies := getInBackground(url + "/slow")
	p.expect("^slow request started$", 10*time.Second)
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-replies:
		if r.err != nil || r.body != "done" {
			t.Errorf("in-flight request got %q, %v; want done", r.body, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight request did not finish")
	}
	if got := p.wait(20 * time.Second); got != 0 {
		t.Errorf("status = %d, want 0; output:\n%s", got, p.output())
	}
}

// httpReply is the answer to a request made in the background.
type httpReply struct {
	body string
	err  error
}

// getInBackground sends a GET for url and returns at once: the request is
// in flight while the test stops the server.
func getInBackground(url string) <-chan httpReply {
	replies := make(chan httpReply, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			replies <- httpReply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replies <- httpReply{string(b), err}
	}()
	return replies
}
