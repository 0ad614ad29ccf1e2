package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// setenv sets the variables for one test; ENTRY_* go through envconfig, which reads the
// process environment.
func setenv(t *testing.T, env map[string]string) func(string) string {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	return os.Getenv
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(setenv(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.WaitTimeout != 120*time.Second || c.StopTimeout != 8*time.Second || !c.Discover || c.Restart != "on-failure" {
		t.Errorf("defaults: got %+v", c.spec)
	}
	if c.lock {
		t.Errorf("release lock on without a Postgres dependency")
	}
}

// badInputs are a few invalid environments; integration.TestBadEnvironment runs the full list
// through the binary.
func badInputs(t *testing.T) []struct {
	name string
	env  map[string]string
	want string
} {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown scheme", map[string]string{"ENTRY_WAIT": "mongodb://db:27017"}, "ENTRY_WAIT"},
		{"bad port", map[string]string{"ENTRY_WAIT": "postgres://u:p@db:70000/app"}, "ENTRY_WAIT"},
		{"empty host", map[string]string{"ENTRY_WAIT": "redis://:6379"}, "ENTRY_WAIT"},
		{"bad CELERY_BROKER_URL", map[string]string{"CELERY_BROKER_URL": "amqp//guest@rabbit"}, "CELERY_BROKER_URL"},
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for _, tt := range badInputs(t) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(setenv(t, tt.env))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a config error", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want+":") {
				t.Errorf("got %q, want it to start with %s", err, tt.want)
			}
		})
	}
}

func TestFileEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("s3 cret\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"POSTGRES_PASSWORD_FILE": p}
	v, src, err := fileEnv(func(k string) string { return env[k] }, "POSTGRES_PASSWORD")
	if err != nil || v != "s3 cret" || src != "POSTGRES_PASSWORD_FILE" {
		t.Errorf("fileEnv = %q, %q, %v; want \"s3 cret\", POSTGRES_PASSWORD_FILE, nil", v, src, err)
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DATABASE_URL":      "pgsql://app:pw@db/app?conn_max_age=60",
		"CELERY_BROKER_URL": "pyamqp://guest:guest@rabbit//",
		"REDIS_URL":         "sqlite:///tmp/x",
	}
	c := &config{spec: spec{Discover: true}}
	if err := c.discover(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range c.deps {
		got = append(got, d.source+" "+d.target)
	}
	want := []string{"DATABASE_URL postgres://app@db:5432/app", "CELERY_BROKER_URL amqp://guest@rabbit:5672//"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("deps: got %q, want %q", got, want)
	}
	if len(c.notes) != 1 || !strings.Contains(c.notes[0], "REDIS_URL") {
		t.Errorf("notes: got %q, want one about REDIS_URL", c.notes)
	}

	// cookiecutter-django: POSTGRES_* when DATABASE_URL is unset, password from a secret file.
	env = map[string]string{"POSTGRES_HOST": "postgres", "POSTGRES_USER": "debug", "POSTGRES_PASSWORD_FILE": p, "POSTGRES_DB": "proj"}
	c = &config{spec: spec{Discover: true}}
	if err := c.discover(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if len(c.deps) != 1 || c.deps[0].target != "postgres://debug@postgres:5432/proj" || c.deps[0].source != "POSTGRES_*" ||
		c.deps[0].url != "host='postgres' port=5432 user='debug' password='pw' dbname='proj'" {
		t.Errorf("POSTGRES_*: got %+v", c.deps)
	}

	// The same endpoint twice is probed once.
	env = map[string]string{"REDIS_URL": "redis://r:6379/0", "CELERY_BROKER_URL": "redis://r:6379/0"}
	c = &config{spec: spec{Discover: true}}
	if err := c.discover(func(k string) string { return env[k] }); err != nil || len(c.deps) != 1 {
		t.Errorf("dedup: got %+v, %v", c.deps, err)
	}
}

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
