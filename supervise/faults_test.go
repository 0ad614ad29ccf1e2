package supervise

// Faults found by trying entry as a hostile user would: each test here
// failed before its fix.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
)

// A crashed process's descendants do not survive its restart: the shell
// that started a web server is killed, the server it left behind is
// stopped before the shell is started again, and the new server gets the
// port.
func TestGroupLeftoversStoppedBeforeRestart(t *testing.T) {
	t.Parallel()
	port := throwaway.FreePort(t)
	g := startGroupEnv(t, []string{"PYTHONUNBUFFERED=1"},
		fmt.Sprintf("web: sh -c \"exec >&2; python3 -m http.server --bind 127.0.0.1 %d & wait $!\"\n", port))
	g.expect(`web.1 +\| Serving HTTP`)
	if err := syscall.Kill(g.child("sh", "-c"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.expect(`process exited" process=web.1 .*killed by SIGKILL`)
	g.expect(`process restarted" process=web.1`)
	if m := g.expect(`web.1 +\| (Serving HTTP|.*Address already in use)`); m[1] != "Serving HTTP" {
		t.Fatalf("the restarted server found its port held:\n%s", g.errOutput())
	}
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	if out := g.errOutput(); strings.Count(out, `msg="process exited"`) != 1 {
		t.Errorf("want exactly one exit before the stop:\n%s", out)
	}
}

// The exit of a process is reported while a descendant that ignores its
// stop signal still holds its output pipe, and the restart waits until
// that descendant is gone.
func TestGroupRestartWaitsForLeftovers(t *testing.T) {
	t.Parallel()
	g := startGroup(t, "web: sh -c \"trap '' TERM; sleep 1000 & echo started >&2; wait\"\n", "-timeout", "10m")
	g.expect(`web.1 +\| started`)
	pid1 := g.pid1()
	if err := syscall.Kill(g.child("sh", "-c"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.expectAll(`process exited" process=web.1 .*killed by SIGKILL`,
		`stopping what the process left behind" process=web.1 count=1 signal=SIGTERM`,
		`restarting process" process=web.1`)
	// It still holds the output pipe: reported exits do not wait for it.
	var sleep int
	eventually(t, 10*time.Second, "the leftover sleep, a child of PID 1", func() bool {
		sleep = proctest.ChildWith(pid1, "sleep", "1000")
		return sleep != 0
	})
	// It ignores TERM, and SIGKILL is ten minutes away: kill it here.
	if err := syscall.Kill(sleep, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m := g.expect(`(process restarted|what the process left behind is gone)" process=web.1`)
	if m[1] != "what the process left behind is gone" {
		t.Fatalf("restarted while the leftover lived:\n%s", g.errOutput())
	}
	g.expect(`process restarted" process=web.1`)
	// The new shell ignores TERM too: the clean-up kills the namespace.
}

// The pidfds of exited children are closed when they exit, not by the
// garbage collector (turned off here, so that it cannot hide a leak).
func TestGroupPidfdsClosed(t *testing.T) {
	t.Parallel()
	g := startGroupEnv(t, []string{"GOGC=off"}, "web: true\n",
		"-restart", "always", "-limit", "20", "-initial", "1ms", "-max", "1ms", "-pidfds")
	g.expect(`stopped: web.1 is crash-looping`)
	if m := g.expect(`^pidfds=(\d+)$`); m[1] != "0" {
		t.Errorf("%s pidfds left open after 21 runs", m[1])
	}
	g.wait()
}

func TestRunPidfdsClosed(t *testing.T) {
	t.Parallel()
	p := start(t, append([]string{"env", "GOGC=off"}, namespaced(pid1Argv([]string{"-release", "true"}, "true")...)...)...)
	if m := p.expect(`^result status=0 .* pidfds=(\d+)$`, 20*time.Second); m[1] != "0" {
		t.Errorf("%s pidfds left open after two runs", m[1])
	}
	p.wait(10 * time.Second)
}

// Every signal Go's os/signal cannot catch (32 and 34, left to the C
// library, and SIGPROF, taken by the profiler) and the highest realtime
// ones reach the main process, as PID 1 (where the kernel drops a signal
// with no handler) and under tini (where it would kill entry). sleep dies
// of each, so its status names the signal. Started with realtime signals
// blocked (masked), entry still relays them: os/signal, whose thread
// unblocks them, takes those rather than entry's own handler.
func TestReservedSignalsReachChild(t *testing.T) {
	t.Parallel()
	const maskRT = "import os, signal, sys\nsignal.pthread_sigmask(signal.SIG_BLOCK, {35, 64})\nos.execv(sys.argv[1], sys.argv[1:])"
	for _, under := range []string{"pid1", "tini", "masked"} {
		for _, sig := range []syscall.Signal{syscall.SIGPROF, 32, 34, 35, 64} {
			if under == "masked" && sig < 35 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", under, sig), func(t *testing.T) {
				t.Parallel()
				argv := pid1Argv(nil, "sleep", "1000")
				switch under {
				case "tini":
					argv = append([]string{"tini", "--"}, argv...)
				case "masked":
					argv = append([]string{"/usr/bin/python3", "-c", maskRT}, argv...)
				}
				p := start(t, namespaced(argv...)...)
				p.expect("^pid1 up", 20*time.Second)
				helper := p.pid1()
				if under == "tini" {
					eventually(t, 10*time.Second, "helper under tini", func() bool {
						return len(proctest.Children(helper)) == 1
					})
					helper = proctest.Children(helper)[0]
				}
				eventually(t, 10*time.Second, "sleep started", func() bool {
					return proctest.ChildWith(helper, "sleep", "1000") != 0
				})
				if err := syscall.Kill(helper, sig); err != nil {
					t.Fatal(err)
				}
				want := strconv.Itoa(Status(sig))
				m := p.expect(`^result status=(\d+) `, 20*time.Second)
				if m[1] != want {
					t.Errorf("main process status %s, want %s (killed by %s)", m[1], want, SignalName(sig))
				}
				if got := p.wait(10 * time.Second); got != Status(sig) {
					t.Errorf("status %d, want %d", got, Status(sig))
				}
			})
		}
	}
}

// In a terminal, in Procfile mode after a release step that had the
// terminal's foreground, Ctrl-C stops everything: entry took the
// foreground back when the step exited.
func TestGroupCtrlCAfterRelease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pf := filepath.Join(dir, "Procfile")
	if err := os.WriteFile(pf, []byte("web: "+childCmd("report")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	helper := []string{os.Args[0], "-test.run=^TestGroupHelper$", "--", "-procfile", pf, "-release", "true"}
	p := start(t, "script", "-qec", strings.Join(namespaced(helper...), " "), "/dev/null")
	p.expect(`web.1 +\| ready report`, 20*time.Second)
	if _, err := io.WriteString(p.stdin, "\x03"); err != nil {
		t.Fatal(err)
	}
	p.expect(`msg=stopping reason="received SIGINT"`, 20*time.Second)
	p.expect(`web.1 +\| got SIGINT`, 20*time.Second)
	if got := p.wait(20 * time.Second); got != 0 {
		t.Errorf("status %d, want 0; output:\n%s", got, p.output())
	}
}

// In JSON mode every line of entry's output is a JSON record, the release
// step's output included; without JSON, or on a terminal, the step writes
// to entry's stdout itself.
func TestRunJSONWrapsOutput(t *testing.T) {
	t.Parallel()
	g := startGroup(t, "web: "+childCmd("report")+"\n", "-format", "json", "-release", "echo step out; echo step err >&2")
	g.expect(`"process":"web.1".*ready report`)
	g.signal(syscall.SIGTERM)
	g.wait()
	for _, l := range strings.Split(strings.TrimSpace(g.output()+g.errOutput()), "\n") {
		if !strings.HasPrefix(l, "{") && !regexp.MustCompile(`^level=`).MatchString(l) {
			t.Errorf("not a JSON record: %q", l)
		}
	}
	if out := g.output(); !strings.Contains(out, `"process":"release","stream":"stdout","line":"step out"`) {
		t.Errorf("release step's stdout not wrapped:\n%s", out)
	}
	if out := g.errOutput(); !strings.Contains(out, `"process":"release","stream":"stderr","line":"step err"`) {
		t.Errorf("release step's stderr not wrapped:\n%s", out)
	}
}
