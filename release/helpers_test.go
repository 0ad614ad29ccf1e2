package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/jackc/pgx/v5"
)

// The local test server: 127.0.0.1:5432, trust auth, user postgres.
const adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// admin runs one statement on the local server's postgres database.
func admin(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("admin %q: %v", sql, err)
	}
}

// newDB creates a fresh database, dropped when the test ends, and returns its
// name and a pgx-ready URL for it.
func newDB(t *testing.T) (string, string) {
	t.Helper()
	name := throwaway.LocalDatabase(t, "release_test")
	return name, throwaway.LocalPostgresURL(name) + "?sslmode=disable"
}

// terminate ends the sessions whose application_name is app and returns how many.
func terminate(t *testing.T, app string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
	if err != nil {
		t.Fatalf("terminate %q: %v", app, err)
	}
	return n
}

// execStep runs a step with sh -c, as the lead's supervise.Run will: ctx
// cancellation sends SIGTERM, and the status is the shell's (128+N for signal N).
func execStep(t *testing.T) func(ctx context.Context, s Step) (int, error) {
	return func(ctx context.Context, s Step) (int, error) {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Command)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ws := ee.Sys().(syscall.WaitStatus)
			status := ws.ExitStatus()
			if ws.Signaled() {
				status = 128 + int(ws.Signal())
			}
			t.Logf("step %s: status %d: %s", s.Name, status, bytes.TrimSpace(out))
			return status, nil
		}
		if err != nil {
			return 127, fmt.Errorf("start %s: %w", s.Name, err)
		}
		return 0, nil
	}
}

// newLog returns a logger whose output a test can wait for, printed if the
// test fails.
func newLog(t *testing.T) (*slog.Logger, *proctest.Buffer) {
	b := &proctest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// recv waits for a value from ch or fails the test.
func recv[T any](t *testing.T, ch <-chan T, within time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("no %s within %s", what, within)
		var zero T
		return zero
	}
}
