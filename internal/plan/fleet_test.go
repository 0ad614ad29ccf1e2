package plan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSingleton(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "Procfile")
	if err := os.WriteFile(pf, []byte("web: gunicorn app\nbeat: celery beat\nrelease: migrate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const db = "DATABASE_URL=postgres://app:s3cret@db:5432/app"
	p, err := Build([]string{"ENTRY_PROCFILE=" + pf, db, "ENTRY_SINGLETON=beat, beat", "ENTRY_RELEASE_LOCK_KEY=42"}, Procfile)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Singleton; s == nil || strings.Join(s.Types, ",") != "beat" || s.Key != 42 || !p.IsSingleton("beat") || p.IsSingleton("web") {
		t.Fatalf("singleton: got %+v", p.Singleton)
	}
	var out bytes.Buffer
	p.Print(&out)
	if !strings.Contains(out.String(), "singleton: beat: one replica at a time, advisory locks derived from key 42 on postgres app@db:5432/app") || strings.Contains(out.String(), "s3cret") {
		t.Errorf("entry config:\n%s", out.String())
	}

	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"ENTRY_SINGLETON=beat"}, "ENTRY_SINGLETON: needs a Postgres dependency"},
		{[]string{db, "ENTRY_SINGLETON=clock"}, `ENTRY_SINGLETON: ` + pf + ` has no process type "clock"`},
		{[]string{db, "ENTRY_SINGLETON=release"}, "ENTRY_SINGLETON: release is not a process type"},
		{[]string{db, "ENTRY_SINGLETON=be/at"}, `ENTRY_SINGLETON: invalid process type`},
	} {
		_, err := Build(append(tt.env, "ENTRY_PROCFILE="+pf), Procfile)
		var errs *Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want %q", tt.env, err, tt.want)
		}
	}
	// A command given: nothing would run the types; a warning, not an error.
	p, err = Build([]string{db, "ENTRY_SINGLETON=beat"}, Command)
	if err != nil || p.Singleton != nil || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "ENTRY_SINGLETON is ignored") {
		t.Errorf("with a command: %v, %+v, %q", err, p.Singleton, p.Warnings)
	}
}

func TestWaitCommand(t *testing.T) {
	const db = "DATABASE_URL=postgres://app:s3cret@db:5432/app"
	p, err := Build([]string{db, "ENTRY_WAIT_COMMAND=python manage.py migrate --check", "ENTRY_WAIT_TIMEOUT=5m", "ENTRY_SKIP_RELEASE=true"}, Command)
	if err != nil {
		t.Fatal(err)
	}
	c := p.WaitCommand
	if c == nil || strings.Join(c.Argv, " ") != "python manage.py migrate --check" || c.Timeout.Minutes() != 5 || c.Lock == nil || c.Lock.Key != p.Release.Lock.Key {
		t.Fatalf("wait command: got %+v", c)
	}
	var out bytes.Buffer
	p.Print(&out)
	if !strings.Contains(out.String(), "wait command: python manage.py migrate --check\n  until it exits 0, within 5m0s; never while another replica holds advisory lock") {
		t.Errorf("entry config:\n%s", out.String())
	}
	// A password in the command is masked where entry shows it.
	p, err = Build([]string{db, "ENTRY_WAIT_COMMAND=check --password s3cret"}, Command)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	p.Print(&out)
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("password shown:\n%s", out.String())
	}
	// Without Postgres there is no lock to watch: the command only retries.
	if p, err := Build([]string{"ENTRY_WAIT_COMMAND=true"}, Command); err != nil || p.WaitCommand.Lock != nil {
		t.Errorf("without Postgres: %v %+v", err, p.WaitCommand)
	}
	if _, err := Build([]string{"ENTRY_WAIT_COMMAND=true\nfalse"}, Command); err == nil || !strings.HasPrefix(err.Error(), "ENTRY_WAIT_COMMAND: one command line") {
		t.Errorf("two lines: got %v", err)
	}
}
