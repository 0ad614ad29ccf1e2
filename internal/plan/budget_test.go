package plan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/procfile"
)

func TestGunicornGrace(t *testing.T) {
	tests := []struct {
		command, env string
		conf         bool // ./gunicorn.conf.py exists
		want         time.Duration
		from         string // "" when entry cannot tell
	}{
		{"gunicorn app", "", false, 30 * time.Second, "its default"},
		{"python -m gunicorn app", "", false, 30 * time.Second, "its default"},
		{"/venv/bin/gunicorn app --graceful-timeout 5", "", false, 5 * time.Second, "--graceful-timeout"},
		{"ddtrace-run gunicorn app --graceful-timeout=12", "", false, 12 * time.Second, "--graceful-timeout"},
		{"gunicorn app", "--workers 3 --graceful-timeout 40", false, 40 * time.Second, "GUNICORN_CMD_ARGS"},
		{"gunicorn app", "--graceful-timeout=40", false, 40 * time.Second, "GUNICORN_CMD_ARGS"},
		// The command line wins over GUNICORN_CMD_ARGS, as in gunicorn.
		{"gunicorn app --graceful-timeout 3", "--graceful-timeout 40", false, 3 * time.Second, "--graceful-timeout"},
		// An assignment before the program wins over the environment.
		{`GUNICORN_CMD_ARGS="--graceful-timeout 50" gunicorn app`, "--graceful-timeout 40", false, 50 * time.Second, "GUNICORN_CMD_ARGS"},
		{`exec gunicorn app`, "", false, 30 * time.Second, "its default"},
		// A named config file may set it: entry does not guess.
		{"gunicorn -c conf.py app", "", false, 0, ""},
		{"gunicorn --config=conf.py app", "", false, 0, ""},
		{"gunicorn app", "-c conf.py", false, 0, ""},
		{"gunicorn -c conf.py app --graceful-timeout 7", "", false, 7 * time.Second, "--graceful-timeout"},
		// gunicorn reads ./gunicorn.conf.py by itself.
		{"gunicorn app", "", true, 0, ""},
		{"gunicorn app", "--graceful-timeout 9", true, 9 * time.Second, "GUNICORN_CMD_ARGS"},
		// An expansion, or no gunicorn at all.
		{"gunicorn app --graceful-timeout $GRACE", "", false, 0, ""},
		{"celery -A app worker", "--graceful-timeout 40", false, 0, ""},
		{"uwsgi --http :8000", "", false, 0, ""},
	}
	for _, tt := range tests {
		d, from, ok := gunicornGrace(procfile.Words(tt.command), tt.env, tt.conf)
		if ok != (tt.from != "") || d != tt.want || !strings.HasPrefix(from, tt.from) {
			t.Errorf("%q with GUNICORN_CMD_ARGS=%q: got %s, %q, %v; want %s, %q", tt.command, tt.env, d, from, ok, tt.want, tt.from)
		}
	}
}

func TestEmbeddedBeat(t *testing.T) {
	for command, want := range map[string]bool{
		"celery -A app worker -B -l info":              true,
		"python -m celery -A app worker --beat":        true,
		"/venv/bin/celery -A app worker -BE":           true,
		"celery -A app worker -l info":                 false,
		"celery -A app beat":                           false,
		"celery -A app worker -c 2 -Q beat":            false,
		"celery -A app worker --concurrency 2 -O fair": false,
		"gunicorn app -B":                              false,
	} {
		if got := embeddedBeat(procfile.Words(command)); got != want {
			t.Errorf("%q: got %v, want %v", command, got, want)
		}
	}
}

// TestBudgetWarnings: one line per link that does not fit, naming the process and the
// figures, and none when everything fits.
func TestBudgetWarnings(t *testing.T) {
	proc := func(typ, n, command string, grace time.Duration) Process {
		return Process{Name: typ + "." + n, Type: typ, Command: command, StopTimeout: grace}
	}
	web := proc("web", "1", "gunicorn app --graceful-timeout 20", 25*time.Second)
	tests := []struct {
		name  string
		stop  Stop
		procs []Process
		want  []string // one substring per warning, in order
	}{
		{"fits", Stop{Timeout: 8 * time.Second, Delay: 5 * time.Second, Budget: 30 * time.Second},
			[]Process{web, proc("worker", "1", "celery -A app worker", 25*time.Second)}, nil},
		{"no budget set", Stop{Timeout: 8 * time.Second, Delay: time.Minute},
			[]Process{web}, nil},
		{"gunicorn default above the grace", Stop{Timeout: 8 * time.Second},
			[]Process{proc("web", "1", "gunicorn app", 8*time.Second), proc("web", "2", "gunicorn app", 8*time.Second)},
			[]string{"web: gunicorn's graceful timeout 30s (its default) is above its grace 8s: a request still running 8s after the stop signal is cut by SIGKILL; raise ENTRY_STOP_TIMEOUT_WEB"}},
		{"GUNICORN_CMD_ARGS above the grace", Stop{Timeout: 8 * time.Second, gunicornArgs: "--graceful-timeout 60"},
			[]Process{proc("api-v2", "1", "gunicorn app", 50*time.Second)},
			[]string{"api-v2: gunicorn's graceful timeout 1m0s (GUNICORN_CMD_ARGS) is above its grace 50s: a request still running 50s after the stop signal is cut by SIGKILL; raise ENTRY_STOP_TIMEOUT_API_V2"}},
		{"delay plus longest grace above the budget", Stop{Timeout: 8 * time.Second, Delay: 5 * time.Second, Budget: 10 * time.Second},
			[]Process{proc("web", "1", "uwsgi", 2*time.Second), proc("worker", "1", "celery -A app worker", 8*time.Second)},
			[]string{"stop budget: shutdown delay 5s + longest grace 8s (worker) = 13s, above ENTRY_STOP_BUDGET 10s"}},
		{"single mode: the main grace against the budget", Stop{Timeout: 30 * time.Second, Budget: 10 * time.Second}, nil,
			[]string{"longest grace 30s (ENTRY_STOP_TIMEOUT) = 30s, above ENTRY_STOP_BUDGET 10s"}},
		{"embedded beat in two instances", Stop{Timeout: 8 * time.Second},
			[]Process{proc("worker", "1", "celery -A app worker -B", 8*time.Second), proc("worker", "2", "celery -A app worker -B", 8*time.Second)},
			[]string{"worker: celery worker with embedded beat (-B) runs in 2 instances (ENTRY_FORMATION): every periodic task is sent 2 times"}},
		{"embedded beat in one instance", Stop{Timeout: 8 * time.Second},
			[]Process{proc("worker", "1", "celery -A app worker -B", 8*time.Second)}, nil},
	}
	for _, tt := range tests {
		got := tt.stop.budgetWarnings(tt.procs)
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %q, want %d warnings", tt.name, got, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(got[i], w) || strings.Contains(got[i], "\n") {
				t.Errorf("%s: warning %d is %q, want it to contain %q", tt.name, i, got[i], w)
			}
		}
	}
}

func TestCommandWarnings(t *testing.T) {
	st := Stop{Timeout: 8 * time.Second}
	if got := st.CommandWarnings([]string{"/usr/bin/gunicorn", "config.wsgi"}); len(got) != 1 || !strings.HasPrefix(got[0], "gunicorn: gunicorn's graceful timeout 30s") || !strings.Contains(got[0], "raise ENTRY_STOP_TIMEOUT ") {
		t.Errorf("got %q", got)
	}
	for _, argv := range [][]string{nil, {"gunicorn", "app", "--graceful-timeout", "8"}, {"python", "manage.py", "shell"}} {
		if got := st.CommandWarnings(argv); got != nil {
			t.Errorf("%q: got %q, want none", argv, got)
		}
	}
}

// TestStopTimeoutPerType: ENTRY_STOP_TIMEOUT_<TYPE> sets its type's grace, is checked
// before anything runs like ENTRY_STOP_SIGNAL_<TYPE>, and a type the Procfile lacks is a
// warning; the delay and the budget reach the plan and `entry config`.
func TestStopTimeoutPerType(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "Procfile")
	if err := os.WriteFile(pf, []byte("web: gunicorn app --graceful-timeout 2\nworker-hi: celery -A app worker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"ENTRY_PROCFILE=" + pf, "ENTRY_STOP_TIMEOUT=3s", "ENTRY_STOP_TIMEOUT_WORKER_HI=8s", "ENTRY_STOP_TIMEOUT_BEAT=1s",
		"ENTRY_SHUTDOWN_DELAY=1s", "ENTRY_STOP_BUDGET=10s"}
	p, err := Build(env, Procfile)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pr := range p.Processes {
		got = append(got, pr.Name+"="+pr.StopTimeout.String())
	}
	if strings.Join(got, " ") != "web.1=3s worker-hi.1=8s" || p.Stop.Delay != time.Second || p.Stop.Budget != 10*time.Second {
		t.Errorf("graces %q, stop %+v", got, p.Stop)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "ENTRY_STOP_TIMEOUT_BEAT names no process type") || len(p.Stop.Warnings) != 0 {
		t.Errorf("warnings %q, stop warnings %q", p.Warnings, p.Stop.Warnings)
	}
	var out bytes.Buffer
	p.Print(&out)
	for _, want := range []string{"stop SIGTERM, SIGKILL after 8s", "shutdown delay: 1s", "stop budget: 10s; the stop takes at most the delay plus the longest grace, 9s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config has no %q:\n%s", want, out.String())
		}
	}

	// Over the budget: a warning, in the plan's warnings and in `entry config`.
	p, err = Build(append(env, "ENTRY_STOP_BUDGET=5s"), Procfile)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	p.Print(&out)
	if len(p.Stop.Warnings) != 1 || !strings.Contains(out.String(), "warning: stop budget: shutdown delay 1s + longest grace 8s (worker-hi) = 9s, above ENTRY_STOP_BUDGET 5s") {
		t.Errorf("stop warnings %q; config:\n%s", p.Stop.Warnings, out.String())
	}

	// Every bad value at once, each naming its variable, even in command mode where the
	// Procfile is not read.
	_, err = Build([]string{"ENTRY_STOP_TIMEOUT_WEB=soon", "ENTRY_STOP_TIMEOUT_WORKER=-1s", "ENTRY_SHUTDOWN_DELAY=-2s", "ENTRY_STOP_BUDGET=x"}, Command)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want *Errors", err)
	}
	var vars []string
	for _, e := range errs.List {
		vars = append(vars, e.Var)
	}
	for _, want := range []string{"ENTRY_STOP_TIMEOUT_WEB", "ENTRY_STOP_TIMEOUT_WORKER", "ENTRY_SHUTDOWN_DELAY", "ENTRY_STOP_BUDGET"} {
		if !strings.Contains(strings.Join(vars, " "), want) {
			t.Errorf("errors %q lack %s", errs, want)
		}
	}
}
