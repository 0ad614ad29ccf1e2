package release

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestAcquireRetriesUntilPostgresIsBack: the lock's connection is retried as
// the wait retries, not tried once (Postgres restarting for half a second used
// to end the container with "connection refused" and 69).
func TestAcquireRetriesUntilPostgresIsBack(t *testing.T) {
	t.Parallel()
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{})
	log, logs := newLog(t)
	type result struct {
		l   *Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := Acquire(context.Background(), pg.SuperuserURL(), LockOptions{Key: 31, Timeout: time.Minute,
			ConnectTimeout: time.Minute, Log: log})
		done <- result{l, err}
	}()
	logs.WaitFor(t, "state=\"connection refused\"", 10*time.Second)
	pg.Start()
	r := recv(t, done, time.Minute, "Acquire")
	if r.err != nil {
		t.Fatalf("Acquire: %v", r.err)
	}
	r.l.Release(context.Background())
}

// TestAcquireNeverConnects: a database that never comes is 69, and the error
// says so.
func TestAcquireNeverConnects(t *testing.T) {
	t.Parallel()
	log, _ := newLog(t)
	url := "postgres://u:pw@" + throwaway.FreeAddr(t) + "/app?sslmode=disable"
	_, err := Acquire(context.Background(), url, LockOptions{Key: 32, Timeout: time.Minute, ConnectTimeout: 300 * time.Millisecond, Log: log})
	if !errors.Is(err, ErrUnavailable) || ExitStatus(err) != ExitUnavailable {
		t.Fatalf("err = %v (status %d), want ErrUnavailable and 69", err, ExitStatus(err))
	}
}

// TestAcquireReconnectsWhileWaiting: the waiting replica's session is
// terminated (a failover, a restart, an operator): it reconnects and goes on
// waiting, then takes the lock when the holder lets go.
func TestAcquireReconnectsWhileWaiting(t *testing.T) {
	t.Parallel()
	db, dbURL := newDB(t)
	const key = 33
	holderApp, waiterApp := "holder_"+db, "waiter_"+db
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holder, err := pgconn.Connect(ctx, dbURL+"&application_name="+holderApp)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(33)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	log, logs := newLog(t)
	done := make(chan error, 1)
	go func() {
		l, err := Acquire(ctx, dbURL, LockOptions{Key: key, Timeout: time.Minute, AppName: waiterApp,
			ConnectTimeout: 30 * time.Second, Log: log})
		if err == nil {
			l.Release(context.Background())
		}
		done <- err
	}()
	logs.WaitFor(t, "release lock busy", 10*time.Second)
	if n := terminate(t, waiterApp); n != 1 {
		t.Fatalf("terminated %d sessions, want 1", n)
	}
	logs.WaitFor(t, "connection lost while waiting, reconnecting", 10*time.Second)
	logs.WaitFor(t, "release lock busy", 10*time.Second)
	holder.Close(ctx)
	if err := recv(t, done, 30*time.Second, "Acquire"); err != nil {
		t.Fatalf("Acquire after a lost session: %v", err)
	}
}

// TestAcquireLostWhileWaitingIs75: Postgres goes away while this replica
// waits for the lock and does not come back within the connect timeout: the
// lock's session was lost, 75, as for a lock lost during a step.
func TestAcquireLostWhileWaitingIs75(t *testing.T) {
	t.Parallel()
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{})
	pg.StartAndWait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holder, err := pgconn.Connect(ctx, pg.SuperuserURL())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(34)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	log, logs := newLog(t)
	done := make(chan error, 1)
	go func() {
		_, err := Acquire(ctx, pg.SuperuserURL(), LockOptions{Key: 34, Timeout: time.Minute,
			ConnectTimeout: 500 * time.Millisecond, Log: log})
		done <- err
	}()
	logs.WaitFor(t, "release lock busy", 10*time.Second)
	pg.Stop()
	err = recv(t, done, 30*time.Second, "Acquire")
	if !errors.Is(err, ErrLockLost) || ExitStatus(err) != ExitLockLost {
		t.Fatalf("err = %v (status %d), want ErrLockLost and 75", err, ExitStatus(err))
	}
}

// TestStepFailedLogsNoNilError: a step that exits non-zero is logged with its
// status, not with "err=<nil>".
func TestStepFailedLogsNoNilError(t *testing.T) {
	log, logs := newLog(t)
	status, _ := Run(context.Background(), nil, []Step{{Name: "a", Command: "exit 4"}}, execStep(t), log)
	if status != 4 {
		t.Fatalf("status %d, want 4", status)
	}
	logs.WaitFor(t, "release step failed", time.Second)
	if text := logs.String(); containsAny(text, "err=<nil>", "err=nil", "%!") {
		t.Errorf("log: %s", text)
	}
}

// TestStepCommandMasked: the logged command hides secrets by structure and
// known ones as whole words.
func TestStepCommandMasked(t *testing.T) {
	log, logs := newLog(t)
	steps := []Step{{Name: "a", Command: "PGPASSWORD=Sekr1tEnv sh -c 'exit 0'"},
		{Name: "b", Command: "true known-Secret-9", Secrets: []string{"known-Secret-9"}}}
	if status, err := Run(context.Background(), nil, steps, execStep(t), log); status != 0 {
		t.Fatalf("Run: %d %v", status, err)
	}
	if text := logs.String(); containsAny(text, "Sekr1tEnv", "known-Secret-9") {
		t.Errorf("log shows a secret: %s", text)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
