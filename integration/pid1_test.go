package integration

// The PID 1 behaviour of the real binary: entry -- CMD runs as the init of a
// fresh PID namespace (as in a container) with real programs as its main
// process. The child programs are in testdata/pid1.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
	"golang.org/x/sys/unix"
)

// pid1NoAtExitSleep stops a race-enabled binary from sleeping a second before
// it exits 0, which would blur the timings measured here.
const pid1NoAtExitSleep = "GORACE=atexit_sleep_ms=0"

func pid1Testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "pid1", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pid1Run runs entry with args as PID 1 of a new PID namespace until it
// exits, bounded by timeout. Unlike startPID1 it cannot miss an entry that
// exits at once. With args starting with another program (tini), that
// program is PID 1 instead.
func pid1Run(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{"--pid", "--fork", "--mount-proc", "--kill-child"}, args...)
	cmd := exec.CommandContext(ctx, "unshare", argv...)
	cmd.Env = cleanEnv(append(env, pid1NoAtExitSleep)...)
	var out proctest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s\n%s", strings.Join(args, " "), timeout, pid1WithoutOrphans(r.stdout))
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.status = ee.ExitCode()
		// unshare dies of the signal that killed its child.
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.status = 128 + int(ws.Signal())
		}
	case err != nil:
		t.Fatal(err)
	}
	pid1NoRace(t, r.stdout)
	return r
}

// pid1NoRace fails the test if the race detector spoke up in entry's output.
func pid1NoRace(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the race detector found a race in entry\n%s", out)
	}
}

// pid1LastLine is entry's own last log line.
func pid1LastLine(out string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimRight(lines[i], "\r"); strings.HasPrefix(l, "entry | ") {
			return l
		}
	}
	return ""
}

func TestPID1ExitCodes(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type test struct {
		name string
		argv []string
		want int
		why  []string // what entry's last line must say
	}
	var tests []test
	for _, code := range []int{0, 1, 2, 3, 42, 64, 126, 127, 128, 200, 254, 255} {
		tests = append(tests, test{
			fmt.Sprintf("exit %d", code), []string{"sh", "-c", fmt.Sprintf("exit %d", code)}, code,
			[]string{fmt.Sprintf("sh exited with status %d: exiting with status %d", code, code)},
		})
	}
	tests = append(tests,
		test{"kill TERM", []string{"sh", "-c", "kill -TERM $$"}, 143, []string{"sh killed by SIGTERM: exiting with status 143"}},
		test{"kill USR1", []string{"sh", "-c", "kill -USR1 $$"}, 138, []string{"sh killed by SIGUSR1: exiting with status 138"}},
		test{"kill KILL", []string{"sh", "-c", "kill -KILL $$"}, 137, []string{"sh killed by SIGKILL: exiting with status 137"}},
		test{"missing", []string{"/nonexistent/program"}, 127, []string{"/nonexistent/program", "no such file or directory", "status=127"}},
		test{"not in PATH", []string{"no-such-program-for-entry"}, 127, []string{"no-such-program-for-entry", "not found", "status=127"}},
		test{"not executable", []string{noexec}, 126, []string{noexec, "permission denied", "status=126"}},
		test{"directory", []string{dir}, 126, []string{dir, "permission denied", "status=126"}},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := pid1Run(t, 30*time.Second, nil, append([]string{entryBin, "--"}, tt.argv...)...)
			if r.status != tt.want {
				t.Errorf("status of %q = %d, want %d\n%s", tt.argv, r.status, tt.want, r.stdout)
			}
			last := pid1LastLine(r.stdout)
			for _, s := range tt.why {
				if !strings.Contains(last, s) {
					t.Errorf("last log line %q, want it to say %q", last, s)
				}
			}
		})
	}
}

// pid1GotSignals lists the signals signals.py reported, in order.
func pid1GotSignals(out string) []string {
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^got (.+)$`).FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	return got
}

// Each signal sent to entry from outside the namespace reaches the main
// process, and nothing else does (SIGURG, SIGCHLD...). TERM, INT and QUIT
// also stop it; after the others it keeps running until TERM.
func TestPID1SignalsReachChild(t *testing.T) {
	script := pid1Testdata(t, "signals.py")
	for _, tt := range []struct {
		sig  syscall.Signal
		stop bool
	}{
		{syscall.SIGTERM, true}, {syscall.SIGINT, true}, {syscall.SIGQUIT, true},
		{syscall.SIGHUP, false}, {syscall.SIGUSR1, false}, {syscall.SIGUSR2, false},
		{syscall.SIGTTIN, false}, {syscall.SIGTTOU, false}, {syscall.SIGWINCH, false},
	} {
		name := unix.SignalName(tt.sig)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := startPID1(t, []string{pid1NoAtExitSleep}, "--", "/usr/bin/python3", script)
			n.waitOutput("ready", 20*time.Second)
			n.signal(tt.sig)
			n.waitOutput("got "+name, 10*time.Second)
			want := []string{name}
			if !tt.stop {
				n.signal(syscall.SIGTERM)
				want = append(want, "SIGTERM")
			}
			if status := n.wait(10 * time.Second); status != 0 {
				t.Errorf("status %d, want 0\n%s", status, n.out)
			}
			out := n.out.String()
			pid1NoRace(t, out)
			if got := pid1GotSignals(out); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("child got %q, want %q\n%s", got, want, out)
			}
			if last := pid1LastLine(out); !strings.Contains(last, "exited with status 0: exiting with status 0") {
				t.Errorf("last log line %q, want the child's status 0", last)
			}
		})
	}
}

var pid1StressResult = regexp.MustCompile(`(?m)^result children=(\d+) lost=(\d+) orphans=(\d+) left=(\d+) zombies=(\d+) seconds=(\S+)\r?$`)

// pid1CheckStress checks the report of stress.py and that entry itself
// reaped at least the orphans the script made (one debug line each).
func pid1CheckStress(t *testing.T, r result, orphans int) {
	t.Helper()
	m := pid1StressResult.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no result from the main process (status %d)\n%s", r.status, pid1WithoutOrphans(r.stdout))
	}
	if m[2] != "0" || m[4] != "0" || m[5] != "0" {
		t.Errorf("lost=%s left=%s zombies=%s, want 0 each\n%s", m[2], m[4], m[5], pid1WithoutOrphans(r.stdout))
	}
	reaped := strings.Count(r.stdout, pid1ReapedOrphan)
	if reaped < orphans {
		t.Errorf("entry reaped %d orphans, want at least %d", reaped, orphans)
	}
	t.Logf("%s children (%ss) with %d orphans reaped by entry; entry ran %s", m[1], m[6], reaped, r.elapsed.Round(time.Millisecond))
}

const pid1ReapedOrphan = "entry | debug: reaped orphan "

// pid1WithoutOrphans is out without its thousands of "reaped orphan" lines.
func pid1WithoutOrphans(out string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(l, pid1ReapedOrphan) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// 1,000 exit statuses of the main process's own children, and then its own
// status, survive 5,000 orphans being reaped by entry at the same time; no
// zombie is left.
func TestPID1StatusesAmidOrphans(t *testing.T) {
	r := pid1Run(t, 90*time.Second, []string{"ENTRY_LOG_LEVEL=debug"},
		entryBin, "--", "/usr/bin/python3", pid1Testdata(t, "stress.py"), "1000", "5000", "42")
	pid1CheckStress(t, r, 5000)
	if r.status != 42 {
		t.Errorf("status %d, want the main process's 42\n%s", r.status, pid1WithoutOrphans(r.stdout))
	}
}

// As PID 2 under tini (docker run --init), entry is a child subreaper: the
// orphans come to it and it reaps them while the main process still runs.
func TestPID1SubreaperUnderTini(t *testing.T) {
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_LOG_LEVEL=debug"},
		"/usr/bin/tini", "--", entryBin, "--", "/usr/bin/python3", pid1Testdata(t, "stress.py"), "100", "500", "0")
	pid1CheckStress(t, r, 500)
	if r.status != 0 {
		t.Errorf("status %d, want 0\n%s", r.status, pid1WithoutOrphans(r.stdout))
	}
	if !strings.Contains(r.stdout, "registered as child subreaper") {
		t.Errorf("entry did not become a subreaper\n%s", pid1WithoutOrphans(r.stdout))
	}
}

func TestPID1StopTimeoutKills(t *testing.T) {
	n := startPID1(t, []string{pid1NoAtExitSleep, "ENTRY_STOP_TIMEOUT=1s"}, "--", "/usr/bin/python3", pid1Testdata(t, "ignore_term.py"))
	n.waitOutput("ready", 20*time.Second)
	sent := time.Now()
	n.signal(syscall.SIGTERM)
	status := n.wait(20 * time.Second)
	took := time.Since(sent)
	t.Logf("killed %s after SIGTERM (ENTRY_STOP_TIMEOUT=1s)", took.Round(time.Millisecond))
	if status != 137 {
		t.Errorf("status %d, want 137\n%s", status, n.out)
	}
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("exited %s after SIGTERM, want about 1s", took)
	}
	out := n.out.String()
	pid1NoRace(t, out)
	if !strings.Contains(out, "sending SIGKILL") {
		t.Errorf("the log does not say SIGKILL was sent\n%s", out)
	}
}

// The main process exits at once, leaving a grandchild that needs a second
// to clean up on SIGTERM: it gets that second, and entry exits right after
// it rather than at the end of the 20 s grace.
func TestPID1LeftoverFinishesCleanup(t *testing.T) {
	n := startPID1(t, []string{pid1NoAtExitSleep, "ENTRY_STOP_TIMEOUT=20s"}, "--", "/usr/bin/python3", pid1Testdata(t, "leave_grandchild.py"))
	n.waitOutput("main exits", 20*time.Second)
	exited := time.Now()
	status := n.wait(20 * time.Second)
	took := time.Since(exited)
	t.Logf("entry exited %s after the main process", took.Round(time.Millisecond))
	if status != 3 {
		t.Errorf("status %d, want the main process's 3\n%s", status, n.out)
	}
	if took > 5*time.Second {
		t.Errorf("entry exited %s after the main process, want right after the 1s clean-up", took)
	}
	out := n.out.String()
	pid1NoRace(t, out)
	if !strings.Contains(out, "cleanup done") {
		t.Errorf("the grandchild did not finish its clean-up\n%s", out)
	}
	if !strings.Contains(out, "stopping leftover processes") {
		t.Errorf("the log does not mention the leftover\n%s", out)
	}
}

// pid1Terminal is a program driven through its stdin, with its output kept.
type pid1Terminal struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *proctest.Buffer
	seen  int // how much of out expect has consumed
	done  chan struct{}
	state *os.ProcessState
}

func pid1StartTerminal(t *testing.T, env []string, argv ...string) *pid1Terminal {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = cleanEnv(append(env, pid1NoAtExitSleep)...)
	term := &pid1Terminal{t: t, cmd: cmd, out: &proctest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = term.out, term.out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	term.in = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		term.state = cmd.ProcessState
		close(term.done)
	}()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-term.done:
			return
		default:
		}
		// script's child is unshare --kill-child: killing it takes the
		// namespace down.
		for _, pid := range proctest.Descendants(cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-term.done
	})
	return term
}

func (term *pid1Terminal) write(s string) {
	term.t.Helper()
	if _, err := io.WriteString(term.in, s); err != nil {
		term.t.Fatalf("writing %q: %v", s, err)
	}
}

// expect waits for output matching re after what earlier calls consumed.
func (term *pid1Terminal) expect(re string, timeout time.Duration) []string {
	term.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		out := term.out.String()
		if loc := rx.FindStringSubmatchIndex(out[term.seen:]); loc != nil {
			m := rx.FindStringSubmatch(out[term.seen:])
			term.seen += loc[1]
			return m
		}
		select {
		case <-deadline:
			term.t.Fatalf("no %q in the output after %s\n%s", re, timeout, out)
		case <-term.done:
			if !rx.MatchString(term.out.String()[term.seen:]) {
				term.t.Fatalf("exited without printing %q\n%s", re, term.out)
			}
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (term *pid1Terminal) wait(timeout time.Duration) int {
	term.t.Helper()
	select {
	case <-term.done:
	case <-time.After(timeout):
		term.t.Fatalf("still running after %s\n%s", timeout, term.out)
	}
	return term.state.ExitCode()
}

// Under a terminal the main process gets it: bash has job control, Ctrl-C
// interrupts its foreground job (not bash, not entry) and exit 0 gives 0.
func TestPID1Terminal(t *testing.T) {
	term := pid1StartTerminal(t, nil, "script", "-qec",
		"unshare --pid --fork --mount-proc --kill-child "+entryBin+" -- bash --norc -i", "/dev/null")
	term.write("echo flags=$-\n")
	if m := term.expect(`flags=(\w+)`, 20*time.Second); !strings.Contains(m[1], "m") {
		t.Errorf("bash flags %q, want job control (m)", m[1])
	}
	term.write("sleep 30\n")
	deadline := time.After(10 * time.Second)
	for proctest.Foreground(term.cmd.Process.Pid, "sleep") == 0 {
		select {
		case <-deadline:
			t.Fatalf("no sleep in the terminal's foreground\n%s", term.out)
		case <-time.After(5 * time.Millisecond):
		}
	}
	term.write("\x03")
	term.expect(`\^C[\s\S]*bash-[\d.]+[#$] `, 10*time.Second) // a new prompt
	term.write("echo rc=$?\n")
	if m := term.expect(`rc=(\d+)`, 10*time.Second); m[1] != "130" {
		t.Errorf("status of the interrupted sleep = %s, want 130", m[1])
	}
	term.write("echo still-here\n")
	term.expect(`\nstill-here`, 10*time.Second)
	term.write("exit 0\n")
	if status := term.wait(10 * time.Second); status != 0 {
		t.Errorf("status %d, want 0\n%s", status, term.out)
	}
	out := term.out.String()
	pid1NoRace(t, out)
	if strings.Contains(out, "stopping main process") {
		t.Errorf("Ctrl-C reached entry\n%s", out)
	}
	if last := pid1LastLine(out); !strings.Contains(last, "bash exited with status 0") {
		t.Errorf("last log line %q, want bash's status 0", last)
	}
}

// Real gunicorn under entry: SIGTTIN adds a worker, SIGHUP replaces the
// workers, SIGTERM lets an in-flight request finish before gunicorn exits 0.
func TestPID1Gunicorn(t *testing.T) {
	addr := throwaway.FreeAddr(t)
	dir := filepath.Dir(pid1Testdata(t, "app.py"))
	// No __pycache__ in testdata from gunicorn importing the app and config.
	n := startPID1(t, []string{pid1NoAtExitSleep, "PYTHONDONTWRITEBYTECODE=1"}, "--", "/usr/bin/gunicorn",
		"--config", filepath.Join(dir, "gunicorn.conf.py"), "--chdir", dir, "--bind", addr)
	workers := func() map[int]bool {
		ws := map[int]bool{}
		for _, master := range proctest.Children(n.pid1) {
			for _, w := range proctest.Children(master) {
				ws[w] = true
			}
		}
		return ws
	}
	eventually := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.After(timeout)
		for !cond() {
			select {
			case <-deadline:
				t.Fatalf("%s: not within %s\n%s", what, timeout, n.out)
			case <-n.done:
				t.Fatalf("%s: entry exited\n%s", what, n.out)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + addr
	eventually("gunicorn serving", 20*time.Second, func() bool {
		resp, err := client.Get(url + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	eventually("one worker", 10*time.Second, func() bool { return len(workers()) == 1 })

	n.signal(syscall.SIGTTIN)
	eventually("two workers after SIGTTIN", 10*time.Second, func() bool { return len(workers()) == 2 })

	old := workers()
	n.signal(syscall.SIGHUP)
	eventually("new workers after SIGHUP", 20*time.Second, func() bool {
		ws := workers()
		for w := range ws {
			if old[w] {
				return false
			}
		}
		return len(ws) > 0
	})

	type reply struct {
		status int
		body   string
		err    error
	}
	replies := make(chan reply, 1)
	go func() {
		resp, err := client.Get(url + "/slow")
		if err != nil {
			replies <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replies <- reply{resp.StatusCode, string(b), err}
	}()
	n.waitOutput("slow request started", 10*time.Second)
	n.signal(syscall.SIGTERM)
	// A complete answer means the worker outlived entry's stop: once entry
	// exits, the kernel kills everything left in the namespace.
	select {
	case r := <-replies:
		if r.err != nil || r.status != http.StatusOK || r.body != "done" {
			t.Errorf("in-flight request: %d %q %v, want 200 done", r.status, r.body, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("in-flight request not answered\n%s", n.out)
	}
	if status := n.wait(20 * time.Second); status != 0 {
		t.Errorf("status %d, want 0\n%s", status, n.out)
	}
	pid1NoRace(t, n.out.String())
}
