package singleton

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/entry-dev/entry/supervise"
	"github.com/jackc/pgx/v5"
)

// replica is one manager and a stand-in for its group: it records grants and
// revokes, and closes a grant's Done when told (the process has exited).
type replica struct {
	cancel context.CancelFunc
	ended  chan struct{}
	log    *proctest.Buffer

	mu     sync.Mutex
	done   chan<- struct{} // the current grant's Done
	events chan string     // "grant", "revoke"
}

func startReplica(t *testing.T, dsn string, grace time.Duration) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cancel: cancel, ended: make(chan struct{}), log: &proctest.Buffer{}, events: make(chan string, 16)}
	leases := make(chan supervise.Lease)
	go func() {
		for l := range leases {
			r.mu.Lock()
			if l.Held {
				r.done = l.Done
				r.events <- "grant"
			} else {
				r.events <- "revoke"
			}
			r.mu.Unlock()
		}
	}()
	go func() {
		defer close(r.ended)
		defer close(leases)
		err := Run(ctx, Options{DSN: dsn, Key: 12345, Types: []string{"beat"}, Grace: grace, Log: slog.New(slog.NewTextHandler(r.log, nil))}, leases)
		if err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

// exited closes the current grant's Done: the group says the process is gone.
func (r *replica) exited() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		close(r.done)
		r.done = nil
	}
}

func (r *replica) stop() {
	r.exited()
	r.cancel()
	<-r.ended
}

func (r *replica) expect(t *testing.T, want string, d time.Duration) {
	t.Helper()
	select {
	case got := <-r.events:
		if got != want {
			t.Fatalf("got %s, want %s\n%s", got, want, r.log)
		}
	case <-time.After(d):
		t.Fatalf("no %s after %s\n%s", want, d, r.log)
	}
}

func (r *replica) quiet(t *testing.T) {
	t.Helper()
	select {
	case got := <-r.events:
		t.Fatalf("unexpected %s\n%s", got, r.log)
	default:
	}
}

func dbURL(t *testing.T) string {
	return throwaway.LocalPostgresURL(throwaway.LocalDatabase(t, "entry_singleton")) + "?sslmode=disable"
}

// holders is how many sessions hold beat's lock, from pg_locks.
func holders(t *testing.T, dsn string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	k1, k2 := Keys(12345, "beat")
	var n int
	// The two-key form shows in classid and objid, as unsigned 32 bits, with objsubid 2.
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
		AND classid::bigint = $1 AND objid::bigint = $2`, int64(uint32(k1)), int64(uint32(k2))).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHandover: of two replicas one holds the lock; the other takes it only once the
// holder's group has stopped the process and the holder has given the lock up, which it
// does not take again. The holder's session ended by the server (pg_terminate_backend)
// revokes its lease, and a third replica takes over.
func TestHandover(t *testing.T) {
	dsn := dbURL(t)
	a := startReplica(t, dsn, time.Second)
	a.expect(t, "grant", 10*time.Second)
	b := startReplica(t, dsn, time.Second)
	b.log.WaitFor(t, "singleton held by another replica: standby", 10*time.Second)
	if n := holders(t, dsn); n != 1 {
		t.Fatalf("%d holders, want 1", n)
	}
	// The holder's lock outlives its process, however long that takes to exit.
	b.quiet(t)

	a.exited()
	a.log.WaitFor(t, "singleton lock released", 10*time.Second)
	b.expect(t, "grant", 5*time.Second)
	c := startReplica(t, dsn, time.Second)
	c.log.WaitFor(t, "singleton held by another replica: standby", 10*time.Second)

	// The server ends b's session: b hears of it at its next poll, revokes, and once its
	// process has exited, reconnects and competes again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'entry singleton' AND pid <> pg_backend_pid()
		AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2)`); err != nil {
		t.Fatal(err)
	}
	b.expect(t, "revoke", 5*time.Second)
	// The server freed the lock with the session: c may take it while b's process is
	// still stopping, a failure mode the README names (an administrator's
	// pg_terminate_backend, a server restart).
	c.expect(t, "grant", 5*time.Second)
	a.quiet(t)
	b.exited()
	b.log.WaitFor(t, "singleton held by another replica: standby", 10*time.Second)
	if n := holders(t, dsn); n != 1 {
		t.Fatalf("%d holders, want 1", n)
	}
}

func TestKeys(t *testing.T) {
	a1, a2 := Keys(7261645163206162, "beat")
	b1, b2 := Keys(7261645163206162, "clock")
	c1, _ := Keys(1, "beat")
	if a1 != b1 || a2 == b2 || a1 == c1 {
		t.Errorf("keys: beat (%d,%d), clock (%d,%d), other app's beat %d", a1, a2, b1, b2, c1)
	}
	if got := DropAfter(8 * time.Second); got != Detect+16*time.Second+Margin {
		t.Errorf("DropAfter(8s) = %s", got)
	}
	if got := DropAfter(0); got != minDrop {
		t.Errorf("DropAfter(0) = %s, want the floor %s", got, minDrop)
	}
}
