package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entry-dev/entry/internal/proctest"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		verb string
		argv []string
		bad  bool
	}{
		{nil, "procfile", nil, false},
		{[]string{"wait"}, "wait", nil, false},
		{[]string{"--", "wait"}, "run", []string{"wait"}, false},
		{[]string{"gunicorn", "config.wsgi"}, "run", []string{"gunicorn", "config.wsgi"}, false},
		{[]string{"--", "-x"}, "run", []string{"-x"}, false},
		{[]string{"-x"}, "", nil, true},
		{[]string{"--"}, "", nil, true},
		{[]string{"wait", "extra"}, "", nil, true},
	}
	for _, tt := range tests {
		inv, err := parseArgs(tt.args)
		if (err != nil) != tt.bad || inv.verb != tt.verb || strings.Join(inv.argv, " ") != strings.Join(tt.argv, " ") {
			t.Errorf("parseArgs(%q) = %+v, %v", tt.args, inv, err)
		}
	}
}

// inProcess runs the whole of entry in this test process with environ as its only
// environment: nothing is read from, or set in, the process's own.
func inProcess(t *testing.T, environ []string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb proctest.Buffer
	status = run(context.Background(), args, environ, &out, &errb)
	return status, out.String(), errb.String()
}

// TestRunInProcess: wait (a note only), release, then the main process, all from an injected
// environment that the children inherit.
func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	released, ran := filepath.Join(dir, "released"), filepath.Join(dir, "ran")
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"ONLY_HERE=injected",
		"REDIS_URL=sqlite:///tmp/x",
		"ENTRY_RELEASE=touch " + released,
		"ENTRY_WAIT_TIMOUT=1s",
	}
	status, stdout, stderr := inProcess(t, env, "--", "sh", "-c", `printf %s "$ONLY_HERE" > `+ran)
	if status != 0 {
		t.Fatalf("status %d\n%s%s", status, stdout, stderr)
	}
	if _, err := os.Stat(released); err != nil {
		t.Errorf("the release step did not run: %v", err)
	}
	if b, err := os.ReadFile(ran); err != nil || string(b) != "injected" {
		t.Errorf("the main process saw ONLY_HERE=%q (%v), want the injected value", b, err)
	}
	for _, want := range []string{"unknown variable ENTRY_WAIT_TIMOUT", "REDIS_URL: sqlite:// is not a network service"} {
		if !strings.Contains(stdout+stderr, want) {
			t.Errorf("no %q in\n%s%s", want, stdout, stderr)
		}
	}
}

// TestRunInProcessBadEnvironment: every error at once, 78, and nothing run.
func TestRunInProcessBadEnvironment(t *testing.T) {
	dir := t.TempDir()
	released, ran := filepath.Join(dir, "released"), filepath.Join(dir, "ran")
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"ENTRY_RELEASE=touch " + released,
		"ENTRY_STOP_SIGNAL_WORKER=SIGFOO",
		"ENTRY_WAIT_TIMEOUT=soon",
		"DATABASE_URL_FILE=/dev/zero",
	}
	status, stdout, stderr := inProcess(t, env, "--", "touch", ran)
	if status != 78 {
		t.Fatalf("status %d, want 78\n%s%s", status, stdout, stderr)
	}
	for _, want := range []string{"ENTRY_STOP_SIGNAL_WORKER:", "ENTRY_WAIT_TIMEOUT:", "DATABASE_URL_FILE: /dev/zero is a device"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %q in\n%s", want, stderr)
		}
	}
	for _, p := range []string{released, ran} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created despite the bad environment", p)
		}
	}
}

// TestWaitNothingSaysSo: a misspelled DATABASE_URI is not waited for, and entry says there is
// nothing to wait for instead of exiting 0 in silence.
func TestWaitNothingSaysSo(t *testing.T) {
	status, stdout, stderr := inProcess(t, []string{"DATABASE_URI=postgres://db/app"}, "wait")
	if status != 0 || !strings.Contains(stdout+stderr, "no dependency to wait for") {
		t.Errorf("status %d, want 0 and a line saying so\n%s%s", status, stdout, stderr)
	}
}

func TestConfigAndHelpInProcess(t *testing.T) {
	status, stdout, _ := inProcess(t, []string{"DATABASE_URL=pgsql://app:Db-s3cret@db/app", "ENTRY_RELEASE=python manage.py migrate"}, "config")
	if status != 0 || strings.Contains(stdout, "s3cret") || !strings.Contains(stdout, "postgres app@db:5432/app") || !strings.Contains(stdout, "lock: advisory lock") {
		t.Errorf("config: status %d\n%s", status, stdout)
	}
	status, stdout, _ = inProcess(t, nil, "help")
	for _, want := range []string{"ENTRY_SKIP_WAIT", "ENTRY_STOP_SIGNAL_<TYPE>", "DATABASE_URL"} {
		if status != 0 || !strings.Contains(stdout, want) {
			t.Errorf("help: status %d, no %s\n%s", status, want, stdout)
		}
	}
}

// TestStopWarningsAtStart: what cannot fit the stop is logged before anything runs, one
// line each; a bad per-type grace is a configuration error naming its variable.
func TestStopWarningsAtStart(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH"), "ENTRY_DISCOVER=false", "ENTRY_STOP_BUDGET=5s"}
	status, stdout, stderr := inProcess(t, env, "--", "gunicorn", "--version")
	if status != 0 {
		t.Fatalf("status %d\n%s%s", status, stdout, stderr)
	}
	for _, want := range []string{
		"warning: gunicorn: gunicorn's graceful timeout 30s (its default) is above its grace 8s",
		"warning: stop budget: shutdown delay 0s + longest grace 8s (ENTRY_STOP_TIMEOUT) = 8s, above ENTRY_STOP_BUDGET 5s",
	} {
		i := strings.Index(stderr, want)
		if i < 0 || i > strings.Index(stderr, "exiting with status") || strings.Count(stderr, want) != 1 {
			t.Errorf("want one %q before the main process's end:\n%s", want, stderr)
		}
	}

	status, _, stderr = inProcess(t, append(env, "ENTRY_STOP_TIMEOUT_WEB=soon"), "config")
	if status != exitConfig || !strings.Contains(stderr, `ENTRY_STOP_TIMEOUT_WEB: invalid duration "soon"`) {
		t.Errorf("status %d, want %d naming ENTRY_STOP_TIMEOUT_WEB:\n%s", status, exitConfig, stderr)
	}
}
