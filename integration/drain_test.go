package integration

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
)

// Draining: three web replicas (entry as PID 1 of its own PID namespace, running
// gunicorn on the test Django project) behind HAProxy, which checks each replica's
// /readyz every 200 ms and takes it out at the first failure. Under constant load, the
// replicas are restarted one after another, as a rolling deploy does.
//
// HAProxy is a plain load balancer here: `retries 0` and no `option redispatch`, so a
// request sent to a replica that no longer listens fails instead of being retried on
// another one. With retries and redispatch HAProxy hides most of these failures for
// idempotent requests, but a POST that reached a closing replica is still lost, and
// a Kubernetes Service or a cloud load balancer does not retry at all.

// drainReplicas is the number of web replicas.
const drainReplicas = 3

// drainRun is one rolling restart: the requests sent and the ones that failed.
type drainRun struct {
	sent, failed int64
	reasons      []string // the first few failures
	took         time.Duration
}

// TestDrainRollingRestart: with ENTRY_SHUTDOWN_DELAY a rolling restart under load loses
// no request; without it, every restart loses the requests HAProxy sent between
// gunicorn closing its listener and the next failed check.
func TestDrainRollingRestart(t *testing.T) {
	a := newDjangoApp(t)
	app, health := drainPorts(t)
	hp := startHAProxy(t, app, health)

	with := drainRollingRestart(t, a, hp, app, health, "1s")
	t.Logf("ENTRY_SHUTDOWN_DELAY=1s: %d requests, %d failed, %d restarts in %v", with.sent, with.failed, drainReplicas, with.took.Round(time.Millisecond))
	if with.failed != 0 {
		t.Errorf("with the shutdown delay: %d of %d requests failed, want 0: %q", with.failed, with.sent, with.reasons)
	}
	without := drainRollingRestart(t, a, hp, app, health, "0s")
	t.Logf("ENTRY_SHUTDOWN_DELAY=0: %d requests, %d failed, %d restarts in %v; first failures: %q", without.sent, without.failed, drainReplicas, without.took.Round(time.Millisecond), without.reasons)
	if without.failed == 0 {
		t.Errorf("without the shutdown delay: no request of %d failed; the test no longer shows what the delay prevents", without.sent)
	}
}

// drainRollingRestart starts the replicas, waits until HAProxy sends them traffic, then
// restarts them one after another under load, and stops them all at the end.
func drainRollingRestart(t *testing.T, a *djangoApp, hp *haproxy, app, health int, delay string) drainRun {
	t.Helper()
	start := func(i int) *djangoEntry {
		env := append(a.environ(),
			"DJANGOAPP_BIND="+drainAddr(i, app),
			"DJANGOAPP_WEB_WORKERS=2",
			"DJANGOAPP_GRACEFUL_TIMEOUT=5",
			"ENTRY_HEALTH_ADDR="+drainAddr(i, health),
			"ENTRY_DISCOVER=false",
			"ENTRY_LOG_LEVEL=info",
			"ENTRY_STOP_TIMEOUT=8s",
			"ENTRY_SHUTDOWN_DELAY="+delay,
			"GORACE=atexit_sleep_ms=0")
		return startDjangoEntry(t, a.dir, env, "python3", "-m", "gunicorn", "djangoapp.wsgi")
	}
	replicas := make([]*djangoEntry, drainReplicas)
	for i := range replicas {
		replicas[i] = start(i)
	}
	for i := range replicas {
		hp.waitStatus(t, i, "UP", replicas[i])
	}

	ctx, cancel := context.WithCancel(context.Background())
	load := startLoad(ctx, hp.addr)
	began := time.Now()
	// Traffic reaches every replica before the first restart.
	load.waitSent(t, 200)
	for i := range replicas {
		replicas[i].signal(t, syscall.SIGTERM)
		if got := replicas[i].wait(t, 60*time.Second); got != 0 {
			t.Errorf("replica %d: entry exited %d, want 0\n%s", i, got, replicas[i].out)
		}
		replicas[i] = start(i)
		hp.waitStatus(t, i, "UP", replicas[i])
		// Some traffic on the new replica before the next one goes.
		load.waitSent(t, load.sent.Load()+100)
	}
	took := time.Since(began)
	cancel()
	run := load.wait()
	run.took = took
	for i := range replicas {
		replicas[i].signal(t, syscall.SIGINT)
		replicas[i].wait(t, 60*time.Second)
	}
	return run
}

// drainAddr is replica i's address on port: each replica has a loopback address of its
// own, 127.0.0.11 and up, so that HAProxy checks every one's /readyz on one port.
func drainAddr(i, port int) string {
	return net.JoinHostPort(fmt.Sprintf("127.0.0.%d", 11+i), strconv.Itoa(port))
}

// drainPorts returns an application port and a health port free on every replica's
// address.
func drainPorts(t *testing.T) (app, health int) {
	t.Helper()
	free := func(port int) bool {
		for i := range drainReplicas {
			ln, err := net.Listen("tcp", drainAddr(i, port))
			if err != nil {
				return false
			}
			ln.Close()
		}
		return true
	}
	for range 20 {
		app, health = throwaway.FreePort(t), throwaway.FreePort(t)
		if app != health && free(app) && free(health) {
			return app, health
		}
	}
	t.Fatal("no pair of ports free on every replica's address")
	return 0, 0
}

// haproxy is HAProxy started by the test, in the foreground, with its admin socket.
type haproxy struct {
	addr, sock string
	out        *proctest.Buffer
}

// startHAProxy runs HAProxy in front of the replicas. Each server is checked twice every
// 200 ms: entry's /readyz on the health port, then the application itself, because
// /readyz says the processes run, not that gunicorn has bound its port yet. Two failed
// checks in a row take the server out (fall 2, so at most about 400 ms after /readyz
// turns 503: well within the 1 s delay), two good ones put it back (rise 2). With fall 1
// the loss without the delay was 3 to 17 requests over three restarts, too few to
// tell from zero reliably; fall 2 is closer to real settings (HAProxy's default is
// fall 3 with inter 2s).
func startHAProxy(t *testing.T, app, health int) *haproxy {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatalf("haproxy is not installed (test.sh installs Debian's package): %v", err)
	}
	dir := t.TempDir()
	hp := &haproxy{addr: throwaway.FreeAddr(t), sock: filepath.Join(dir, "admin.sock"), out: &proctest.Buffer{}}
	var servers strings.Builder
	for i := range drainReplicas {
		fmt.Fprintf(&servers, "    server r%d %s check\n", i, drainAddr(i, app))
	}
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
    maxconn 512

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    retries 0

frontend web
    bind %s
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check connect port %d
    http-check send meth GET uri /readyz
    http-check expect status 200
    http-check connect
    http-check send meth GET uri /
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
%s`, hp.sock, hp.addr, health, servers.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("haproxy", "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = hp.out, hp.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("haproxy's output:\n%s", hp.out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := hp.stat(); err == nil {
			return hp
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited:\n%s", hp.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's admin socket did not answer:\n%s", hp.out)
		}
	}
}

// stat returns each server's status ("UP", "DOWN", "UP 1/2"...) from `show stat`.
func (hp *haproxy) stat() (map[string]string, error) {
	c, err := net.DialTimeout("unix", hp.sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(bufio.NewReader(c)).ReadAll()
	if err != nil && len(rows) == 0 {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("empty answer")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	out := map[string]string{}
	for _, r := range rows[1:] {
		if len(r) > col["status"] && r[col["pxname"]] == "replicas" {
			out[r[col["svname"]]] = r[col["status"]]
		}
	}
	return out, nil
}

// waitStatus waits until HAProxy reports replica i in status want.
func (hp *haproxy) waitStatus(t *testing.T, i int, want string, p *djangoEntry) {
	t.Helper()
	name := fmt.Sprintf("r%d", i)
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for {
		st, err := hp.stat()
		if err == nil && st[name] == want {
			return
		}
		last = st[name]
		select {
		case <-p.done:
			t.Fatalf("replica %d exited with %d before HAProxy saw it %s:\n%s", i, p.code, want, p.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy: %s is %q, not %s, after 90s:\n%s", name, last, want, p.out)
		}
	}
}

// load is a bounded load loop on loopback: a few clients sending GET / through HAProxy,
// each at most one request per loadEvery, until cancelled (or a generous cap is reached).
// The pace leaves the two cores to the replicas, so that a slow check does not take them
// all out at once.
type load struct {
	sent, failed atomic.Int64
	done         chan struct{}
	mu           sync.Mutex
	reasons      []string
}

const (
	loadClients = 6
	loadEvery   = 10 * time.Millisecond
	loadCap     = 200_000 // requests: a bound, should the test's own deadline not come
)

func startLoad(ctx context.Context, addr string) *load {
	l := &load{done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: loadClients}}
	var wg sync.WaitGroup
	for range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(loadEvery)
			defer tick.Stop()
			for ctx.Err() == nil && l.sent.Load() < loadCap {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
				err := l.get(client, "http://"+addr+"/")
				l.sent.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.reasons) < 5 {
						l.reasons = append(l.reasons, err.Error())
					}
					l.mu.Unlock()
				}
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *load) get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %q", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// waitSent waits until n requests have been sent.
func (l *load) waitSent(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for l.sent.Load() < n {
		select {
		case <-l.done:
			t.Fatalf("the load stopped at %d requests", l.sent.Load())
		case <-deadline:
			t.Fatalf("only %d of %d requests sent after 60s", l.sent.Load(), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (l *load) wait() drainRun {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return drainRun{sent: l.sent.Load(), failed: l.failed.Load(), reasons: l.reasons}
}

// TestDrainStopTimeoutPerType: web with 2 s of grace and a worker with 8 s, whose task
// needs 6 s (3 s of it left at the stop), stop in parallel: the request in flight and
// the task both complete, entry
// exits 0, and the stop takes about the task's remaining time plus celery's own warm
// shutdown (about 2 s after its last task), not 2 s (one deadline for all would kill the
// task) and not 8 + 2 s (deadlines one after another).
func TestDrainStopTimeoutPerType(t *testing.T) {
	a := newDjangoApp(t)
	dbURL := a.useLocalServices(t)
	a.env["ENTRY_PROCESSES"] = "web,worker"
	a.env["ENTRY_STOP_TIMEOUT"] = "1h" // neither type may fall back on it
	a.env["ENTRY_STOP_TIMEOUT_WEB"] = "2s"
	a.env["ENTRY_STOP_TIMEOUT_WORKER"] = "8s"
	a.env["DJANGOAPP_GRACEFUL_TIMEOUT"] = "2"
	// The race-enabled binary would sleep a second at exit, counted in the stop.
	a.env["GORACE"] = "atexit_sleep_ms=0"
	p := startDjangoStack(t, a)

	if code, err := djangoGet("http://"+a.web+"/enqueue/?token=task&sleep=6", nil); err != nil || code != http.StatusOK {
		t.Fatalf("enqueue: %d %v", code, err)
	}
	djangoWaitMark(t, dbURL, "task", "started", 30*time.Second)
	// A request of 3 s while the task runs: celery's own warm shutdown takes 2 s after
	// its last task here, up to 4 s on a loaded machine, so a task just started would
	// leave the 8 s grace no margin.
	if code, err := djangoGet("http://"+a.web+"/slow/?sleep=3", nil); err != nil || code != http.StatusOK {
		t.Fatalf("first request: %d %v", code, err)
	}
	replied := make(chan error, 1)
	go func() {
		var v struct{ Slept bool }
		code, err := djangoGet("http://"+a.web+"/slow/?sleep=1&token=request", &v)
		if err == nil && (code != http.StatusOK || !v.Slept) {
			err = fmt.Errorf("got %d %+v, want 200 and slept", code, v)
		}
		replied <- err
	}()
	djangoWaitMark(t, dbURL, "request", "started", 30*time.Second)

	sent := time.Now()
	p.signal(t, syscall.SIGTERM)
	status := p.wait(t, 60*time.Second)
	took := time.Since(sent)
	t.Logf("stop took %v (web grace 2s, worker grace 8s, the 6 s task started about 3 s before the stop)", took.Round(10*time.Millisecond))
	if status != 0 {
		t.Errorf("entry exit status: got %d, want 0\n%s", status, p.out)
	}
	if err := <-replied; err != nil {
		t.Errorf("request in flight: %v", err)
	}
	for _, token := range []string{"request", "task"} {
		if got := djangoMark(t, dbURL, token); got != "done" {
			t.Errorf("%s: got state %q, want done", token, got)
		}
	}
	out := p.out.String()
	for _, want := range []string{`timeout="web 2s, worker 8s"`, `process stopped process=web.1`, `process stopped process=worker.1`} {
		if !strings.Contains(out, want) {
			t.Errorf("entry's log has no %s", want)
		}
	}
	if strings.Contains(out, "sending SIGKILL") || strings.Contains(out, "warning: web: gunicorn") {
		t.Errorf("a process was killed, or gunicorn's graceful timeout was taken for its default:\n%s", out)
	}
	// A behavioural bound, not a speed test: the deadlines run side by side.
	if took >= 10*time.Second {
		t.Errorf("stop took %v: the deadlines look serialized (8 s + 2 s)", took)
	}
}
