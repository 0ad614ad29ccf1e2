package release

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/jackc/pgx/v5"
)

// holdLock takes key on dbURL from a plain session named app, as any other client
// could, and returns that session's pid. The session ends with the test.
func holdLock(t *testing.T, dbURL, app string, key int64) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL+"&application_name="+url.PathEscape(app))
	if err != nil {
		t.Fatalf("holder connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		t.Fatalf("holder lock: %v", err)
	}
	return conn.PgConn().PID()
}

func TestAcquireTimeoutReportsHolder(t *testing.T) {
	db, dbURL := newDB(t)
	app := "manual holder " + db
	pid := holdLock(t, dbURL, app, 7261645163206162) // above 2^32: both halves of the key matter

	log, logs := newLog(t)
	_, err := Acquire(context.Background(), dbURL, LockOptions{Key: 7261645163206162, Timeout: time.Second, AppName: "entry release waiter", Log: log})
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("Acquire: got %v, want ErrLockTimeout", err)
	}
	if want := fmt.Sprintf("pid %d", pid); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder %q", err, want)
	}
	out := logs.String()
	for _, want := range []string{
		"release lock busy, waiting",
		fmt.Sprintf("holder_pid=%d", pid),
		fmt.Sprintf("holder_app=%q", app),
		"holder_addr=127.0.0.1",
		"holder_since=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q", want)
		}
	}
	// About four polls happened; the holder is reported once, not per poll.
	if got := strings.Count(out, "waiting"); got != 1 {
		t.Errorf("got %d waiting lines, want 1:\n%s", got, out)
	}
}

// A waiter reports a new holder when the lock changes hands, without waiting for
// the periodic report.
func TestAcquireReportsHolderChange(t *testing.T) {
	db, dbURL := newDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, second := "holder one "+db, "holder two "+db
	connect := func(app string) *pgx.Conn {
		conn, err := pgx.Connect(ctx, dbURL+"&application_name="+url.PathEscape(app))
		if err != nil {
			t.Fatalf("connect %s: %v", app, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	one, two := connect(first), connect(second)
	if _, err := one.Exec(ctx, "SELECT pg_advisory_lock(-18)"); err != nil {
		t.Fatal(err)
	}
	// The second holder queues in pg_advisory_lock, so the server hands it the lock
	// the moment the first lets go, before any waiter's next try.
	queued := make(chan error, 1)
	go func() {
		_, err := two.Exec(ctx, "SELECT pg_advisory_lock(-18)")
		queued <- err
	}()
	for {
		var waiting bool
		err := one.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1)", two.PgConn().PID()).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
	}

	log, logs := newLog(t)
	errc := make(chan error, 1)
	go func() {
		_, err := Acquire(ctx, dbURL, LockOptions{Key: -18, Log: log})
		errc <- err
	}()
	logs.WaitFor(t, fmt.Sprintf("holder_pid=%d", one.PgConn().PID()), 10*time.Second)
	if _, err := one.Exec(ctx, "SELECT pg_advisory_unlock(-18)"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, queued, 10*time.Second, "second holder's lock"); err != nil {
		t.Fatal(err)
	}
	logs.WaitFor(t, "release lock holder changed, waiting", 10*time.Second)
	logs.WaitFor(t, fmt.Sprintf("holder_pid=%d", two.PgConn().PID()), time.Second)
	cancel()
	recv(t, errc, 10*time.Second, "Acquire return")
}

func TestAcquireCancelledWhileWaiting(t *testing.T) {
	db, dbURL := newDB(t)
	holdLock(t, dbURL, "manual holder "+db, 12)

	log, logs := newLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Acquire(ctx, dbURL, LockOptions{Key: 12, Timeout: time.Minute, Log: log})
		errc <- err
	}()
	logs.WaitFor(t, "release lock busy", 10*time.Second)
	cancel()
	err := recv(t, errc, 10*time.Second, "Acquire return after cancel")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLockTimeout) {
		t.Fatalf("Acquire: got %v, want context.Canceled", err)
	}
}

// A terminated lock session cancels the running step, Run reports the loss, and a
// replica that was waiting takes over.
func TestLostLockStopsStepAndHandsOver(t *testing.T) {
	db, dbURL := newDB(t)
	ctx := context.Background()
	appA, appB := "entry release A "+db, "entry release B "+db

	logA, _ := newLog(t)
	a, err := Acquire(ctx, dbURL, LockOptions{Key: 13, Timeout: 10 * time.Second, AppName: appA, Log: logA})
	if err != nil {
		t.Fatalf("Acquire A: %v", err)
	}
	defer a.Release(ctx)

	logB, logsB := newLog(t)
	bc := make(chan *Lock, 1)
	go func() {
		b, err := Acquire(ctx, dbURL, LockOptions{Key: 13, Timeout: 30 * time.Second, AppName: appB, Log: logB})
		if err != nil {
			t.Errorf("Acquire B: %v", err)
		}
		bc <- b
	}()

	started, stopped := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var ran []string
	run := func(ctx context.Context, s Step) (int, error) {
		mu.Lock()
		ran = append(ran, s.Name)
		mu.Unlock()
		close(started)
		status, err := execStep(t)(ctx, s)
		if ctx.Err() != nil {
			close(stopped)
		}
		return status, err
	}
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, err := Run(ctx, a, []Step{{Name: "migrate", Command: "exec sleep 60"}, {Name: "collectstatic", Command: "true"}}, run, logA)
		done <- result{status, err}
	}()

	recv(t, started, 10*time.Second, "step start")
	logsB.WaitFor(t, "release lock busy", 10*time.Second)
	if n := terminate(t, appA); n != 1 {
		t.Fatalf("terminated %d sessions named %q, want 1", n, appA)
	}
	recv(t, stopped, 10*time.Second, "step cancellation")
	r := recv(t, done, 10*time.Second, "Run return")
	if r.status != ExitLockLost || !errors.Is(r.err, ErrLockLost) {
		t.Errorf("Run: got %d, %v; want %d, ErrLockLost", r.status, r.err, ExitLockLost)
	}
	mu.Lock()
	if want := []string{"migrate"}; !slices.Equal(ran, want) {
		t.Errorf("steps run: got %q, want %q", ran, want)
	}
	mu.Unlock()
	if err := a.Release(ctx); err != nil {
		t.Errorf("Release A after loss: %v", err)
	}

	b := recv(t, bc, 30*time.Second, "Acquire B")
	if b == nil {
		t.FailNow()
	}
	status, err := Run(ctx, b, []Step{{Name: "migrate", Command: "true"}}, execStep(t), logB)
	if status != 0 || err != nil {
		t.Errorf("Run B: got %d, %v; want 0, nil", status, err)
	}
	if err := b.Release(ctx); err != nil {
		t.Errorf("Release B: %v", err)
	}
}

func TestReleaseFreesLock(t *testing.T) {
	_, dbURL := newDB(t)
	ctx := context.Background()
	for i := range 2 {
		l, err := Acquire(ctx, dbURL, LockOptions{Key: 14, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("Acquire %d: %v", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release %d: %v", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("second Release %d: %v", i, err)
		}
	}
}

// No error or log line carries the password, whatever fails.
func TestErrorsHideThePassword(t *testing.T) {
	const secret = "S3cr3t:p@ss/w%rd"
	db, dbURL := newDB(t)
	role := throwaway.Name("release_pw")
	admin(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, secret))
	t.Cleanup(func() { admin(t, "DROP ROLE IF EXISTS "+role) })
	userinfo := url.UserPassword(role, secret).String()
	roleURL := "postgres://" + userinfo + "@127.0.0.1:5432/" + db + "?sslmode=disable"
	holdLock(t, dbURL, "manual holder "+db, 15)

	closed := throwaway.FreeAddr(t)

	tests := []struct {
		name string
		url  string
		key  int64
	}{
		{"malformed URL", "postgres://" + role + ":" + secret + "@127.0.0.1:5432/" + db, 16},
		{"malformed keyword DSN", "host=127.0.0.1 port=x user=" + role + " password=" + secret, 16},
		{"connection refused", "postgres://" + userinfo + "@" + closed + "/" + db + "?sslmode=disable", 16},
		{"no such database", "postgres://" + userinfo + "@127.0.0.1:5432/" + db + "_missing?sslmode=disable", 16},
		{"lock timeout", roleURL, 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLog(t)
			l, err := Acquire(context.Background(), tc.url, LockOptions{Key: tc.key, Timeout: 500 * time.Millisecond, Log: log})
			if err == nil {
				l.Release(context.Background())
				t.Fatal("Acquire succeeded, want an error")
			}
			t.Logf("error: %v", err)
			assertHidden(t, secret, err.Error(), logs.String())
		})
	}

	t.Run("lost lock", func(t *testing.T) {
		ctx := context.Background()
		log, logs := newLog(t)
		app := "entry release pw " + db
		l, err := Acquire(ctx, roleURL, LockOptions{Key: 17, Timeout: 5 * time.Second, AppName: app, Log: log})
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		terminate(t, app)
		recv(t, l.Lost(), 10*time.Second, "lock loss")
		status, err := Run(ctx, l, []Step{{Name: "migrate", Command: "true"}}, execStep(t), log)
		if status != ExitLockLost || !errors.Is(err, ErrLockLost) {
			t.Fatalf("Run: got %d, %v; want %d, ErrLockLost", status, err, ExitLockLost)
		}
		rerr := l.Release(ctx)
		t.Logf("error: %v", err)
		assertHidden(t, secret, err.Error(), fmt.Sprint(rerr), logs.String())
	})
}

func assertHidden(t *testing.T, secret string, texts ...string) {
	t.Helper()
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("u", secret).String()[2:]}
	for _, text := range texts {
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("%q contains the password as %q", text, f)
			}
		}
	}
}
