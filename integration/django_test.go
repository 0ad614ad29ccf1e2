package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
)

// The Django stack end to end: entry, built once, runs the project in
// testdata/djangoapp (gunicorn, celery worker and beat, migrate as the release step)
// as PID 1 of a fresh PID namespace, against real Postgres, RabbitMQ and Redis.

// djangoModuleRoot is the repository root: go test runs in integration/.
func djangoModuleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startDjangoStack runs the app's Procfile under entry and waits until gunicorn answers.
func startDjangoStack(t *testing.T, a *djangoApp) *djangoEntry {
	t.Helper()
	p := startDjangoEntry(t, a.dir, a.environ())
	djangoWaitHTTP(t, p, "http://"+a.web+"/", 60*time.Second)
	return p
}

// taskRoundTrip enqueues a task through the web process and waits for the worker's row.
func taskRoundTrip(t *testing.T, a *djangoApp, dbURL, token string, d time.Duration) {
	t.Helper()
	if code, err := djangoGet("http://"+a.web+"/enqueue/?token="+token, nil); err != nil || code != http.StatusOK {
		t.Fatalf("enqueue %s: %d %v", token, code, err)
	}
	djangoWaitMark(t, dbURL, token, "done", d)
}

// TestDjangoGracefulStop: a SIGTERM while a request and a task are running lets both
// finish, and entry exits 0 once every process has exited by itself.
func TestDjangoGracefulStop(t *testing.T) {
	a := newDjangoApp(t)
	dbURL := a.useLocalServices(t)
	a.env["ENTRY_STOP_TIMEOUT"] = "30s"
	p := startDjangoStack(t, a)

	type reply struct {
		code int
		err  error
	}
	replied := make(chan reply, 1)
	go func() {
		var v struct{ Slept bool }
		code, err := djangoGet("http://"+a.web+"/slow/?sleep=3&token=request", &v)
		if err == nil && !v.Slept {
			err = fmt.Errorf("got %+v, want slept", v)
		}
		replied <- reply{code, err}
	}()
	if code, err := djangoGet("http://"+a.web+"/enqueue/?token=task&sleep=3", nil); err != nil || code != http.StatusOK {
		t.Fatalf("enqueue: %d %v", code, err)
	}
	djangoWaitMark(t, dbURL, "request", "started", 30*time.Second)
	djangoWaitMark(t, dbURL, "task", "started", 30*time.Second)

	p.signal(t, syscall.SIGTERM)
	if got := p.wait(t, 60*time.Second); got != 0 {
		t.Errorf("entry exit status: got %d, want 0", got)
	}
	r := <-replied
	if r.err != nil || r.code != http.StatusOK {
		t.Errorf("request in flight: got %d %v, want 200", r.code, r.err)
	}
	for _, token := range []string{"request", "task"} {
		if got := djangoMark(t, dbURL, token); got != "done" {
			t.Errorf("%s: got state %q, want done", token, got)
		}
	}
}

// TestDjangoWorkerCrash: a worker killed by SIGKILL is restarted (ENTRY_RESTART's
// default, on-failure) and the new one runs tasks; a later stop still exits 0.
func TestDjangoWorkerCrash(t *testing.T) {
	a := newDjangoApp(t)
	dbURL := a.useLocalServices(t)
	health := throwaway.FreeAddr(t)
	a.env["ENTRY_HEALTH_ADDR"] = health
	p := startDjangoStack(t, a)
	taskRoundTrip(t, a, dbURL, "before", 30*time.Second)

	pid, err := p.pid()
	if err != nil {
		t.Fatal(err)
	}
	worker := proctest.ChildWith(pid, "celery", "worker")
	if worker == 0 {
		t.Fatal("no celery worker among entry's children")
	}
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	djangoPoll(t, 30*time.Second, "a new worker", func() bool {
		w := proctest.ChildWith(pid, "celery", "worker")
		return w != 0 && w != worker
	})
	taskRoundTrip(t, a, dbURL, "after", 60*time.Second)
	restarts := -1
	for _, proc := range djangoStatus(t, health).Processes {
		if proc.Name == "worker.1" {
			restarts = proc.Restarts
		}
	}
	if restarts != 1 {
		t.Errorf("/status: got worker.1 restarts %d, want 1", restarts)
	}

	p.signal(t, syscall.SIGTERM)
	if got := p.wait(t, 60*time.Second); got != 0 {
		t.Errorf("entry exit status: got %d, want 0", got)
	}
}

// TestDjangoReleaseRace: six replicas start at once against an empty database. Without
// a lock most of them fail (duplicate pg_type rows, "column price already exists");
// entry's advisory lock makes them take turns, so every one exits 0 and the migrations
// are applied exactly once.
func TestDjangoReleaseRace(t *testing.T) {
	a := newDjangoApp(t)
	dbURL := djangoCreateDB(t)
	a.env["DATABASE_URL"] = dbURL
	// No ENTRY_RELEASE_LOCK: the lock is on by default once DATABASE_URL names Postgres.
	a.env["ENTRY_RELEASE"] = "python3 manage.py migrate --noinput"
	const replicas = 6

	procs := make([]*djangoEntry, replicas)
	for i := range procs {
		procs[i] = startDjangoEntry(t, a.dir, a.environ(), "--", "true")
	}
	applied := 0
	for i, p := range procs {
		if got := p.wait(t, 120*time.Second); got != 0 {
			t.Errorf("replica %d: got exit %d, want 0\n%s", i, got, p.out)
		}
		applied += strings.Count(p.out.String(), "Applying shop.0002_item_price... OK")
	}
	if applied != 1 {
		t.Errorf("shop.0002 applied %d times, want 1", applied)
	}

	var rows, price int
	if err := djangoQueryRow(t, dbURL, "SELECT count(*) FROM django_migrations WHERE app = 'shop'", nil, &rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("django_migrations: got %d shop rows, want 2", rows)
	}
	if err := djangoQueryRow(t, dbURL, "SELECT price FROM shop_item WHERE name = 'seed'", nil, &price); err != nil {
		t.Fatal(err)
	}
	if price != 100 {
		t.Errorf("seed item: got price %d, want 100 (backfilled by 0002)", price)
	}
}

// TestDjangoShell: `entry -- python3 manage.py shell` under a pseudo-terminal, as
// `docker run -it` gives it; the shell must own the terminal (a background process
// group would be stopped by SIGTTIN on its first read). ENTRY_SKIP_RELEASE skips a
// release step that would fail.
func TestDjangoShell(t *testing.T) {
	a := newDjangoApp(t)
	a.env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/postgres"
	a.env["ENTRY_RELEASE"] = "false"
	a.env["ENTRY_SKIP_RELEASE"] = "true"
	a.env["TERM"] = "dumb"
	line := fmt.Sprintf("unshare --pid --fork --mount-proc %s -- python3 manage.py shell", entryBin)
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Dir = a.dir
	cmd.Env = a.environ()
	out := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// After a kill, the pty's other side may keep the output pipe open for a moment.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
	})

	out.WaitFor(t, ">>> ", 30*time.Second)
	io.WriteString(stdin, "print('an' + 'swer', 6 * 7)\n")
	out.WaitFor(t, "answer 42", 10*time.Second)
	io.WriteString(stdin, "raise SystemExit(0)\n")
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("script: %v, want exit 0", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shell still running 30s after exit")
	}
	stdin.Close()
}

// TestDjangoColdStart: entry starts before Postgres, Redis and RabbitMQ (as in a cold
// `docker compose up`), waits for them, migrates, and runs web, worker and beat; the
// first request is served, a task goes through RabbitMQ and back, beat ticks, the
// health endpoints answer, and a SIGTERM stops everything with status 0. No password
// appears in anything entry or the processes print.
func TestDjangoColdStart(t *testing.T) {
	const pgPass, redisPass, amqpPass = "pg-S3cret-cold", "redis-S3cret-cold", "amqp-S3cret-cold"
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: pgPass, Databases: []string{"app"}})
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{RequirePass: redisPass})
	mq := throwaway.NewRabbitMQ(t, throwaway.RabbitOptions{User: "app", Password: amqpPass})

	a := newDjangoApp(t)
	health := throwaway.FreeAddr(t)
	dbURL := pg.URL("postgres", pgPass, "app")
	a.env["DATABASE_URL"] = dbURL
	a.env["REDIS_URL"] = rd.URL("", redisPass, 0)
	a.env["CELERY_BROKER_URL"] = mq.DefaultURL()
	a.env["ENTRY_HEALTH_ADDR"] = health
	a.env["ENTRY_WAIT_TIMEOUT"] = "120s"
	a.env["ENTRY_STOP_TIMEOUT"] = "20s"
	p := startDjangoEntry(t, a.dir, a.environ())
	// entry is probing (and failing) before any server exists.
	p.out.WaitFor(t, pg.Addr(), 10*time.Second)

	start := time.Now()
	mq.Start()
	pg.Start()
	rd.Start()
	djangoWaitHTTP(t, p, "http://"+a.web+"/db/", 120*time.Second)
	t.Logf("servers started → first HTTP 200: %v", time.Since(start).Round(time.Millisecond))

	var v struct{ Items, Hits int }
	if code, err := djangoGet("http://"+a.web+"/db/", &v); err != nil || code != http.StatusOK || v.Hits < 2 || v.Items < 3 {
		t.Errorf("/db/: got %d %+v %v, want 200 with hits >= 2 and items >= 3", code, v, err)
	}
	rt := time.Now()
	taskRoundTrip(t, a, dbURL, "cold", 60*time.Second)
	t.Logf("task round trip through RabbitMQ: %v", time.Since(rt).Round(time.Millisecond))
	djangoPoll(t, 30*time.Second, "beat's ticks", func() bool {
		var v struct{ Ticks int }
		code, err := djangoGet("http://"+a.web+"/ticks/", &v)
		return err == nil && code == http.StatusOK && v.Ticks >= 2
	})

	for _, path := range []string{"/livez", "/readyz"} {
		if code, err := djangoGet("http://"+health+path, nil); err != nil || code != http.StatusOK {
			t.Errorf("%s: got %d %v, want 200", path, code, err)
		}
	}
	st := djangoStatus(t, health)
	if st.Phase != "running" || !st.Ready || len(st.Processes) != 3 {
		t.Errorf("/status: got %+v, want phase running, ready, 3 processes", st)
	}

	p.signal(t, syscall.SIGTERM)
	if got := p.wait(t, 60*time.Second); got != 0 {
		t.Errorf("entry exit status: got %d, want 0", got)
	}
	out := p.out.String()
	for _, name := range []string{"web.1", "worker.1", "beat.1"} {
		// Names are padded to a common width, as honcho does.
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` *\| `).MatchString(out) {
			t.Errorf("no line prefixed %q in the output", name+" | ")
		}
	}
	for _, secret := range []string{pgPass, redisPass, amqpPass} {
		if strings.Contains(out, secret) {
			t.Errorf("password %q in the output", secret)
		}
	}
}

// TestDjangoWrongPassword: a database that refuses the password is not retried until
// the deadline: entry exits 69 (EX_UNAVAILABLE) at once, starts nothing, and prints the
// password in no form (raw or URL-encoded).
func TestDjangoWrongPassword(t *testing.T) {
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: "right-pw", Databases: []string{"app"}})
	pg.StartAndWait()
	const wrong = "wr0ng:p@ss/w%rd"
	a := newDjangoApp(t)
	a.env["DATABASE_URL"] = pg.URL("postgres", wrong, "app")
	a.env["ENTRY_WAIT_TIMEOUT"] = "120s"

	start := time.Now()
	p := startDjangoEntry(t, a.dir, a.environ())
	// Far below ENTRY_WAIT_TIMEOUT: a refusal is final, not a reason to wait.
	if got := p.wait(t, 30*time.Second); got != 69 {
		t.Errorf("entry exit status: got %d, want 69", got)
	}
	t.Logf("exit 69 after %v", time.Since(start).Round(time.Millisecond))
	out := p.out.String()
	for _, s := range []string{wrong, url.QueryEscape(wrong), url.PathEscape(wrong), "wr0ng"} {
		if strings.Contains(out, s) {
			t.Errorf("password (%q) in the output:\n%s", s, out)
		}
	}
	for _, prefix := range []string{"web.1 ", "Operations to perform"} {
		if strings.Contains(out, prefix) {
			t.Errorf("%q in the output: something ran after the wait failed", prefix)
		}
	}
}
