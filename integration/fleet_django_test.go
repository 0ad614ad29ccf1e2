package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readStamps reads the times (seconds.nanoseconds, one a line) a shell appended to path.
func readStamps(t *testing.T, path string) []time.Time {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, line := range strings.Fields(string(b)) {
		f, err := strconv.ParseFloat(line, 64)
		if err != nil {
			t.Fatalf("%s: %q", path, line)
		}
		out = append(out, time.Unix(0, int64(f*1e9)))
	}
	return out
}

func waitStamp(t *testing.T, path string, d time.Duration) time.Time {
	t.Helper()
	var got []time.Time
	djangoPoll(t, d, path, func() bool { got = readStamps(t, path); return len(got) > 0 })
	return got[0]
}

// TestFleetWaitCommandAfterMigration: a worker replica with ENTRY_SKIP_RELEASE=true and
// ENTRY_WAIT_COMMAND="python3 manage.py migrate --check", started while another replica's
// slow migration holds the release lock, never runs the command under the lock, and starts
// its worker within 3 s of the lock's release.
func TestFleetWaitCommandAfterMigration(t *testing.T) {
	a := newDjangoApp(t)
	a.env["DATABASE_URL"] = djangoCreateDB(t)
	marks := t.TempDir()
	stamp := func(name string) string { return "date +%s.%N >> " + filepath.Join(marks, name) }
	// The release holds the lock for 4 s before migrate starts, then for the migration
	// (0002 sleeps 1 s); its first and last steps record when the lock was held.
	a.env["ENTRY_RELEASE"] = strings.Join([]string{
		"sh -c '" + stamp("locked") + "'",
		"sh -c 'sleep 4; exec python3 manage.py migrate --noinput'",
		"sh -c '" + stamp("released") + "'",
	}, "\n")
	procfile := filepath.Join(a.dir, "Procfile.fleet")
	content := fmt.Sprintf("worker: sh -c '%s; exec sleep 1000'\n", stamp("worker-"+"$REPLICA"))
	if err := os.WriteFile(procfile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	a.env["ENTRY_PROCFILE"] = procfile

	web := startDjangoEntry(t, a.dir, append(a.environ(), "REPLICA=web"))
	locked := waitStamp(t, filepath.Join(marks, "locked"), 30*time.Second)

	env := append(a.environ(), "REPLICA=worker", "ENTRY_SKIP_RELEASE=true",
		"ENTRY_WAIT_COMMAND=sh -c '"+stamp("attempts")+"; exec python3 manage.py migrate --check'")
	worker := startDjangoEntry(t, a.dir, env)
	worker.out.WaitFor(t, "release lock held by another replica", 30*time.Second)

	released := waitStamp(t, filepath.Join(marks, "released"), 60*time.Second)
	started := waitStamp(t, filepath.Join(marks, "worker-worker"), 30*time.Second)
	attempts := readStamps(t, filepath.Join(marks, "attempts"))
	t.Logf("lock held %s; wait command attempts %d; worker started %s after the release (first attempt after %s)",
		released.Sub(locked).Round(time.Millisecond), len(attempts), started.Sub(released).Round(time.Millisecond),
		attempts[0].Sub(released).Round(time.Millisecond))
	for _, at := range attempts {
		if !at.Before(locked) && !at.After(released) {
			t.Errorf("the wait command ran at %s, while the release lock was held (%s to %s)",
				at.Format("15:04:05.000"), locked.Format("15:04:05.000"), released.Format("15:04:05.000"))
		}
	}
	if d := started.Sub(released); d > 3*time.Second {
		t.Errorf("the worker started %s after the migration, want within 3 s", d)
	}
	if len(attempts) != 1 {
		t.Errorf("%d attempts of the wait command, want 1: it runs once the lock is given up", len(attempts))
	}
	waitStamp(t, filepath.Join(marks, "worker-web"), 30*time.Second)
	_ = web
}

// TestFleetCeleryBeatSingleton: three replicas run worker and beat with ENTRY_SINGLETON=beat
// against the local RabbitMQ: the periodic task (every second) is sent once per period,
// before and after the beat's replica is stopped and another takes over.
func TestFleetCeleryBeatSingleton(t *testing.T) {
	a := newDjangoApp(t)
	dbURL := a.useLocalServices(t)
	a.env["ENTRY_SINGLETON"] = "beat"
	a.env["ENTRY_STOP_TIMEOUT"] = "20s"
	// The test project's Procfile, but each worker with a node name of its own: three
	// workers named celery@<host> share one pidbox, and one fails its warm shutdown.
	procfile := filepath.Join(a.dir, "Procfile.fleet")
	err := os.WriteFile(procfile, []byte(`release: python3 manage.py migrate --noinput
worker: python3 -m celery -A djangoapp worker --loglevel INFO --concurrency 2 --without-mingle --without-gossip -n worker$REPLICA@%h
beat: python3 -m celery -A djangoapp beat --loglevel INFO
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	a.env["ENTRY_PROCFILE"] = procfile
	var reps []*djangoEntry
	for i := range 3 {
		env := append(a.environ(), fmt.Sprintf("DJANGOAPP_BEAT_SCHEDULE=%s/beat-%d", a.dir, i), fmt.Sprintf("REPLICA=%d", i))
		reps = append(reps, startDjangoEntry(t, a.dir, env))
	}
	holder := -1
	djangoPoll(t, 60*time.Second, "one beat", func() bool {
		for i, r := range reps {
			if strings.Contains(r.out.String(), "singleton lock acquired") {
				holder = i
				return true
			}
		}
		return false
	})
	ticks := func() []time.Time {
		var ts []time.Time
		err := djangoQueryRow(t, dbURL, "SELECT coalesce(array_agg(created ORDER BY created), '{}') FROM shop_tick", nil, &ts)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	// once waits for ten ticks after from and checks they came one per period: a second
	// beat would send every task twice, and the gaps would halve.
	once := func(what string, from time.Time) {
		t.Helper()
		var in []time.Time
		djangoPoll(t, 30*time.Second, what+": ten ticks", func() bool {
			in = in[:0]
			for _, ts := range ticks() {
				if ts.After(from) {
					in = append(in, ts)
				}
			}
			return len(in) >= 10
		})
		in = in[:10]
		minGap := time.Hour
		for i := 1; i < len(in); i++ {
			minGap = min(minGap, in[i].Sub(in[i-1]))
		}
		span := in[9].Sub(in[0])
		t.Logf("%s: ten ticks over %s, smallest gap %s", what, span.Round(time.Millisecond), minGap.Round(time.Millisecond))
		if span < 8*time.Second {
			t.Errorf("%s: ten ticks over %s, want one a second", what, span)
		}
		if minGap < 250*time.Millisecond {
			t.Errorf("%s: two ticks %s apart: the task was sent twice", what, minGap)
		}
	}
	djangoPoll(t, 60*time.Second, "beat's first ticks", func() bool { return len(ticks()) >= 2 })
	once("three replicas", time.Now())

	stopped := time.Now()
	reps[holder].signal(t, syscall.SIGTERM)
	var next time.Time
	djangoPoll(t, 30*time.Second, "a new beat", func() bool {
		for i, r := range reps {
			if i != holder && strings.Contains(r.out.String(), "singleton lock acquired") {
				next = time.Now()
				return true
			}
		}
		return false
	})
	t.Logf("beat handed over %s after SIGTERM of its replica", next.Sub(stopped).Round(time.Millisecond))
	if got := reps[holder].wait(t, 60*time.Second); got != 0 {
		t.Errorf("stopped beat replica: status %d, want 0", got)
	}
	djangoPoll(t, 60*time.Second, "ticks from the new beat", func() bool {
		ts := ticks()
		return len(ts) > 0 && ts[len(ts)-1].After(next)
	})
	once("after the handover", next)
}
