package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// migrateScript behaves like an unlocked `manage.py migrate`: it checks what is
// applied, works for a while, then applies. Run one at a time, the first creates
// the table and the others find nothing to do; raced, all see it missing and all
// but one fail on CREATE TABLE.
const migrateScript = `
SELECT NOT EXISTS (SELECT FROM pg_tables WHERE tablename = 't') AS pending \gset
\if :pending
SELECT pg_sleep(1);
CREATE TABLE t (id int);
\endif
`

func TestRunSerialisesReplicas(t *testing.T) {
	tests := []struct {
		name      string
		lock      bool
		wantFails bool
	}{
		{"with lock", true, false},
		{"without lock", false, true}, // proves the step does fail when raced
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, dbURL := newDB(t)
			script := filepath.Join(t.TempDir(), "migrate.sql")
			if err := os.WriteFile(script, []byte(migrateScript), 0o644); err != nil {
				t.Fatal(err)
			}
			step := Step{Name: "migrate", Command: "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d " + db + " -f " + script}

			var running, most atomic.Int32
			run := func(ctx context.Context, s Step) (int, error) {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				return execStep(t)(ctx, s)
			}

			const replicas = 8
			ctx := context.Background()
			statuses := make([]int, replicas)
			var wg sync.WaitGroup
			for i := range replicas {
				wg.Go(func() {
					log, _ := newLog(t)
					var lock *Lock
					if tc.lock {
						var err error
						lock, err = Acquire(ctx, dbURL, LockOptions{Key: 21, Timeout: 60 * time.Second, AppName: fmt.Sprintf("entry release %d", i), Log: log})
						if err != nil {
							t.Errorf("replica %d: Acquire: %v", i, err)
							return
						}
						defer lock.Release(ctx)
					}
					statuses[i], _ = Run(ctx, lock, []Step{step}, run, log)
				})
			}
			wg.Wait()

			fails := 0
			for _, s := range statuses {
				if s != 0 {
					fails++
				}
			}
			t.Logf("statuses %v, at most %d steps at once", statuses, most.Load())
			if got := fails > 0; got != tc.wantFails {
				t.Errorf("got %d of %d replicas failing, want failures: %v", fails, replicas, tc.wantFails)
			}
			if got := most.Load() > 1; got != !tc.lock {
				t.Errorf("got at most %d steps at once with lock %v", most.Load(), tc.lock)
			}
		})
	}
}

func TestRunStopsAtFailingStep(t *testing.T) {
	_, dbURL := newDB(t)
	errStart := errors.New("cannot start")
	tests := []struct {
		name       string
		steps      []Step
		wantStatus int
		wantRan    []string
	}{
		{"all succeed", []Step{{Name: "a", Command: "true"}, {Name: "b", Command: "exit 0"}}, 0, []string{"a", "b"}},
		{"second fails", []Step{{Name: "a", Command: "true"}, {Name: "b", Command: "exit 3"}, {Name: "c", Command: "true"}}, 3, []string{"a", "b"}},
		{"killed by signal", []Step{{Name: "a", Command: "kill -KILL $$"}, {Name: "b", Command: "true"}}, 137, []string{"a"}},
		{"runner error", []Step{{Name: "start-error", Command: ""}, {Name: "b", Command: "true"}}, 1, []string{"start-error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			log, _ := newLog(t)
			lock, err := Acquire(ctx, dbURL, LockOptions{Key: 22, Timeout: 10 * time.Second, Log: log})
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			defer lock.Release(ctx)

			var ran []string
			run := func(ctx context.Context, s Step) (int, error) {
				ran = append(ran, s.Name)
				if s.Name == "start-error" {
					return 0, errStart
				}
				return execStep(t)(ctx, s)
			}
			status, err := Run(ctx, lock, tc.steps, run, log)
			if status != tc.wantStatus {
				t.Errorf("status: got %d, want %d", status, tc.wantStatus)
			}
			if (err == nil) != (tc.wantStatus == 0) {
				t.Errorf("error: got %v, want an error iff status != 0", err)
			}
			if tc.name == "runner error" && !errors.Is(err, errStart) {
				t.Errorf("error: got %v, want it to wrap %v", err, errStart)
			}
			if !slices.Equal(ran, tc.wantRan) {
				t.Errorf("ran: got %q, want %q", ran, tc.wantRan)
			}
		})
	}
}

func TestRunCancelledBeforeStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	run := func(context.Context, Step) (int, error) { called = true; return 0, nil }
	status, err := Run(ctx, nil, []Step{{Name: "a", Command: "true"}}, run, nil)
	if status == 0 || !errors.Is(err, context.Canceled) || called {
		t.Errorf("got %d, %v, step called %v; want non-zero, context.Canceled, not called", status, err, called)
	}
}
