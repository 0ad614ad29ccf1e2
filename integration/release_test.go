package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

// psql runs one statement against the local server as postgres.
func psql(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-XtAq", "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// racyStep behaves like manage.py migrate: it checks whether its change is applied, works for
// a second, then applies it without IF NOT EXISTS. Two at once both apply, and one fails.
func racyStep(db string) string {
	conn := "-h 127.0.0.1 -U postgres -d " + db + " -XtAq -v ON_ERROR_STOP=1"
	return fmt.Sprintf(`sh -c 'test "$(psql %s -c "select to_regclass(%s)")" = t || psql %s -c "select pg_sleep(1)" -c "create table t (id int)"'`,
		conn, `\$\$t\$\$`, conn)
}

func TestReleaseRaceEightReplicas(t *testing.T) {
	for _, lock := range []string{"auto", "false"} {
		t.Run("lock="+lock, func(t *testing.T) {
			db := throwaway.LocalDatabase(t, "entry_it")
			env := []string{
				"DATABASE_URL=" + throwaway.LocalPostgresURL(db),
				"ENTRY_RELEASE=" + racyStep(db),
				"ENTRY_RELEASE_LOCK=" + lock,
			}
			var wg sync.WaitGroup
			results := make([]result, 8)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = runEntry(t, 60*time.Second, env, "--", "true")
				}()
			}
			wg.Wait()
			failed := 0
			for _, r := range results {
				if r.status != 0 {
					failed++
				}
			}
			t.Logf("lock=%s: %d of 8 failed", lock, failed)
			if lock == "auto" && failed > 0 {
				for _, r := range results {
					if r.status != 0 {
						t.Fatalf("a replica failed under the lock: status %d\n%s", r.status, r.output())
					}
				}
			}
			if lock == "false" && failed == 0 {
				t.Fatalf("without the lock no replica failed: the test cannot tell a race")
			}
		})
	}
}

func TestReleaseLockLostTerminatesStep(t *testing.T) {
	db := throwaway.LocalDatabase(t, "entry_it")
	dir := t.TempDir()
	env := func(step string) []string {
		return []string{"DATABASE_URL=" + throwaway.LocalPostgresURL(db), "ENTRY_RELEASE=" + step}
	}
	a := startPID1(t, env(`sh -c 'echo step-a-started; exec sleep 60'`), "--", "touch", filepath.Join(dir, "a"))
	a.waitOutput("\nstep-a-started", 20*time.Second)
	b := startPID1(t, env(`sh -c 'echo step-b-ran'`), "--", "touch", filepath.Join(dir, "b"))
	b.waitOutput("release lock", 20*time.Second) // b reports it is waiting for the holder

	holder := psql(t, "postgres", "select pid from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = '"+db+"')")
	if holder == "" {
		t.Fatalf("no advisory lock held\n%s", a.out)
	}
	psql(t, "postgres", "select pg_terminate_backend("+holder+")")

	if status := a.wait(20 * time.Second); status == 0 {
		t.Fatalf("replica a exited 0 after losing the lock\n%s", a.out)
	} else {
		t.Logf("replica a exited %d", status)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Errorf("replica a started its process without the lock")
	}
	if status := b.wait(20 * time.Second); status != 0 {
		t.Fatalf("replica b: status %d, want 0\n%s", status, b.out)
	}
	if !strings.Contains(b.out.String(), "\nstep-b-ran") {
		t.Errorf("replica b's step did not run\n%s", b.out)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); err != nil {
		t.Errorf("replica b did not start its process after the release")
	}
}

func TestReleaseSIGTERMIsForwarded(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	step := `sh -c 'trap "echo step-got-term; exit 0" TERM; echo step-started; while :; do sleep 0.05; done'`
	n := startPID1(t, []string{"ENTRY_RELEASE=" + step}, "--", "touch", marker)
	// At the start of a line: entry's log of the command holds the same words, before
	// the shell has set its trap.
	n.waitOutput("\nstep-started", 20*time.Second)
	n.signal(syscall.SIGTERM)
	if status := n.wait(10 * time.Second); status != 0 {
		t.Fatalf("status %d, want the step's own 0\n%s", status, n.out)
	}
	if !strings.Contains(n.out.String(), "\nstep-got-term") {
		t.Errorf("the step never saw SIGTERM\n%s", n.out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the process started after a stopped release")
	}
}

func TestReleaseFailingStepStatus(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	r := runEntry(t, 20*time.Second, []string{"ENTRY_RELEASE=true\nsh -c 'exit 3'\ntouch " + marker + ".2"}, "--", "touch", marker)
	if r.status != 3 {
		t.Fatalf("status %d, want 3\n%s", r.status, r.output())
	}
	for _, p := range []string{marker, marker + ".2"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s ran after a failed release step", p)
		}
	}
	// ENTRY_SKIP_RELEASE is the switch for ad-hoc runs.
	r = runEntry(t, 20*time.Second, []string{"ENTRY_RELEASE=sh -c 'exit 3'", "ENTRY_SKIP_RELEASE=true"}, "--", "touch", marker)
	if _, err := os.Stat(marker); r.status != 0 || err != nil {
		t.Errorf("ENTRY_SKIP_RELEASE: status %d, want 0 and the command run\n%s", r.status, r.output())
	}
}
