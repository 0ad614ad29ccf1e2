package supervise

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDrainHold: only SIGTERM starts the delay, with /readyz not ready at
// once; any stop signal during it ends it; it runs once.
func TestDrainHold(t *testing.T) {
	var logs bytes.Buffer
	clock := make(chan time.Time)
	newTest := func(delay time.Duration) (*drain, *Health) {
		h := NewHealth()
		h.SetPhase("running")
		d := newDrain(delay, h, slog.New(slog.NewTextHandler(&logs, nil)))
		d.after = func(time.Duration) <-chan time.Time { return clock }
		return d, h
	}

	d, h := newTest(0)
	if d.hold(syscall.SIGTERM) || d.C != nil || h.notReady() != "" {
		t.Errorf("no delay: held the stop, or changed readiness")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT} {
		d, h = newTest(time.Hour)
		if d.hold(sig) || d.C != nil || h.notReady() != "" {
			t.Errorf("%s held the stop: a person's signal does not wait", SignalName(sig))
		}
	}
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT} {
		logs.Reset()
		d, h = newTest(time.Hour)
		if !d.hold(syscall.SIGTERM) || d.C != clock {
			t.Fatalf("SIGTERM did not start the delay")
		}
		if why := h.notReady(); why != "phase draining" {
			t.Errorf("during the delay: not ready because %q, want phase draining", why)
		}
		if d.hold(second) || d.C != nil {
			t.Errorf("%s during the delay did not end it", SignalName(second))
		}
		if why := h.notReady(); why != "phase stopping" {
			t.Errorf("after the delay: not ready because %q, want phase stopping", why)
		}
		if d.hold(syscall.SIGTERM) {
			t.Errorf("the delay ran twice")
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "shutdown delay: not ready") || !strings.Contains(lines[0], "delay=1h0m0s") ||
			!strings.Contains(lines[1], "shutdown delay skipped") || !strings.Contains(lines[1], "signal="+SignalName(second)) {
			t.Errorf("want one line at the start, one when skipped; got:\n%s", logs.String())
		}
	}
}

// TestGroupShutdownDelay: after SIGTERM, /readyz is 503 at once, the
// process keeps running (a signal still reaches it) and gets no stop
// signal until a second stop signal skips the rest of the delay; that one
// goes out as the stop signal (SIGTERM as the type's, SIGINT as sent).
func TestGroupShutdownDelay(t *testing.T) {
	t.Parallel()
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(SignalName(second), func(t *testing.T) {
			t.Parallel()
			g := startGroup(t, "web: "+childCmd("report")+"\n", "-health", "-delay", "1h")
			addr := g.expect(`msg=health addr=(\S+)`)[1]
			g.expect(`web.1 +\| ready report`)
			if code, body := httpGet(t, addr, "/readyz"); code != 200 {
				t.Fatalf("before the stop: /readyz %d %q", code, body)
			}
			g.signal(syscall.SIGTERM)
			g.expect(`msg="shutdown delay: not ready, the processes keep running until the stop signals go out" delay=1h0m0s`)
			if code, body := httpGet(t, addr, "/readyz"); code != 503 || !strings.Contains(body, "draining") {
				t.Errorf("during the delay: /readyz %d %q, want 503 draining", code, body)
			}
			g.signal(syscall.SIGUSR1)
			g.expect(`web.1 +\| got SIGUSR1`)
			g.signal(second)
			g.expect(`msg="shutdown delay skipped: stopping now" signal=` + SignalName(second))
			g.expect(`web.1 +\| got ` + SignalName(second))
			if status, _ := g.wait(); status != 0 {
				t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
			}
			out := g.errOutput()
			if strings.Index(out, "got SIGUSR1") > strings.Index(out, "shutdown delay skipped") || strings.Count(out, "| got ") != 2 {
				t.Errorf("the process got a stop signal during the delay:\n%s", out)
			}
		})
	}
}

// TestGroupShutdownDelayOver: once the delay is over, the stop signals go
// out by themselves and the stop ends as usual.
func TestGroupShutdownDelayOver(t *testing.T) {
	t.Parallel()
	g := startGroup(t, "web: "+childCmd("report")+"\n", "-delay", "200ms")
	g.expect(`web.1 +\| ready report`)
	g.signal(syscall.SIGTERM)
	g.expect(`"shutdown delay: not ready`)
	g.expect(`msg=stopping reason="received SIGTERM, after the shutdown delay"`)
	g.expect(`web.1 +\| got SIGTERM`)
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	if strings.Contains(g.errOutput(), "skipped") {
		t.Errorf("nothing skipped the delay:\n%s", g.errOutput())
	}
}

// TestRunShutdownDelay: the same in single-command mode.
func TestRunShutdownDelay(t *testing.T) {
	t.Parallel()
	p := start(t, namespaced(pid1Argv([]string{"-health", "-delay", "1h"}, "python3", "-c", reportSignals)...)...)
	addr := p.expect(`^health (\S+)`, 10*time.Second)[1]
	p.expect("^ready$", 30*time.Second)
	if code, body := httpGet(t, addr, "/readyz"); code != 200 {
		t.Fatalf("before the stop: /readyz %d %q", code, body)
	}
	if err := syscall.Kill(p.pid1(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.expect(`msg="shutdown delay: not ready`, 10*time.Second)
	if code, body := httpGet(t, addr, "/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("during the delay: /readyz %d %q, want 503 draining", code, body)
	}
	if err := syscall.Kill(p.pid1(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	p.expect("^got SIGUSR1 from 1$", 10*time.Second)
	if err := syscall.Kill(p.pid1(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.expect(`msg="shutdown delay skipped: stopping now" signal=SIGTERM`, 10*time.Second)
	p.expect("^got SIGTERM from 1$", 10*time.Second)
	if got := p.wait(10 * time.Second); got != 0 {
		t.Errorf("status %d, want 0; output:\n%s", got, p.output())
	}
	if n := strings.Count(p.output(), "\ngot "); n != 2 {
		t.Errorf("the main process got %d signals, want USR1 then TERM; output:\n%s", n, p.output())
	}
}

// TestGroupStopTimeoutPerType: each process is killed at its own type's
// deadline, all stopping at once: a web that ignores TERM is killed after
// its 1 s while a worker whose clean-up takes 3 s, with 10 s of grace,
// finishes it. The stop takes about 3 s (logged, not asserted: speed is
// not a unit test's business).
func TestGroupStopTimeoutPerType(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("web: %s\nworker: %s\n", childCmd("ignore"), childCmd("slowstop", "3s")),
		"-timeout", "1h", "-timeouts", "web=1s,worker=10s")
	g.expectAll(`web.1 +\| ready ignore`, `worker.1 +\| ready slowstop`)
	sent := time.Now()
	g.signal(syscall.SIGTERM)
	g.expect(`msg=stopping reason="received SIGTERM" processes=2 timeout="web 1s, worker 10s"`)
	g.expectAll(`"process did not stop in time, sending SIGKILL" process=web.1 pid=\d+ timeout=1s`,
		`"process stopped" process=worker.1 pid=\d+ exit="exited with status 0"`)
	status, at := g.wait()
	if status != 137 {
		t.Errorf("got status %d, want 137 (web.1 was killed):\n%s", status, g.errOutput())
	}
	if got := g.lastLine(); !strings.Contains(got, "web.1 did not stop within 1s and was killed") {
		t.Errorf("last line %q does not name web.1 and its own grace", got)
	}
	if !regexp.MustCompile(`(?m)^worker.1 +\| clean stop at`).MatchString(g.output()) {
		t.Errorf("worker.1 did not finish its clean-up:\n%s", g.output())
	}
	if strings.Contains(g.errOutput(), `sending SIGKILL" process=worker.1`) {
		t.Errorf("worker.1 was killed:\n%s", g.errOutput())
	}
	t.Logf("stop took %v (web's grace 1s, worker's clean-up 3s, worker's grace 10s)", at.Sub(sent).Round(10*time.Millisecond))
}

func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
