package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOperations(t *testing.T) {
	dir := t.TempDir()
	acc := accounts{passwd: filepath.Join(dir, "passwd"), group: filepath.Join(dir, "group")}
	os.WriteFile(acc.passwd, []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(acc.group, []byte("root:x:0:\napp:x:1000:\n"), 0o644)
	const dsn = "https://Zk3yS3cr3tKey@o1.ingest.example/42"
	plan := func(env ...string) (*Plan, error) { return build(env, Command, acc) }

	p, err := plan("SENTRY_DSN="+dsn, "SENTRY_RELEASE=r1", "SENTRY_ENVIRONMENT=prod")
	if err != nil || p.Sentry == nil || p.Sentry.Options.DSN != dsn || p.Sentry.Options.Release != "r1" || p.Sentry.Options.Environment != "prod" || p.Sentry.From != "SENTRY_DSN" {
		t.Errorf("SENTRY_DSN: %+v %v", p, err)
	}
	p, _ = plan("SENTRY_DSN="+dsn, "ENTRY_SENTRY_DSN="+dsn+"1")
	if p.Sentry == nil || p.Sentry.Options.DSN != dsn+"1" || p.Sentry.From != "ENTRY_SENTRY_DSN" {
		t.Errorf("ENTRY_SENTRY_DSN does not win: %+v", p.Sentry)
	}
	p, err = plan("SENTRY_DSN=not a dsn Zk3yS3cr3tKey", "ENTRY_SENTRY=false")
	if err != nil || p.Sentry != nil {
		t.Errorf("ENTRY_SENTRY=false: %+v %v", p, err)
	}
	p, err = plan("ENTRY_USER=app", "ENTRY_CHOWN="+dir)
	if err != nil || p.User == nil || p.User.UID != 1000 || len(p.Chown) != 1 {
		t.Errorf("ENTRY_USER=app: %+v %v", p, err)
	}

	for env, want := range map[string]string{
		"SENTRY_DSN=https://Zk3yS3cr3tKey@/1":             "SENTRY_DSN:",
		"ENTRY_SENTRY_DSN=ftp://Zk3yS3cr3tKey@h/1":        "ENTRY_SENTRY_DSN:",
		"ENTRY_SENTRY=maybe":                              "ENTRY_SENTRY:",
		"SENTRY_DSN=" + dsn + " ENTRY_SENTRY_TIMEOUT=-1s": "ENTRY_SENTRY_TIMEOUT:",
		"ENTRY_CHOWN=" + dir:                              "ENTRY_CHOWN: is set but ENTRY_USER is not",
		"ENTRY_USER=ghost":                                "ENTRY_USER: user \"ghost\"",
		"ENTRY_USER=app ENTRY_CHOWN=" + dir + "/missing":  "ENTRY_CHOWN: " + dir + "/missing",
		"ENTRY_USER=app ENTRY_CHOWN=" + acc.passwd:        "not a directory",
		"ENTRY_USER=4242":                                 "give its group",
	} {
		_, err := plan(strings.Fields(env)...)
		var errs *Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", env, err, want)
			continue
		}
		if strings.Contains(err.Error(), "Zk3yS3cr3tKey") {
			t.Errorf("%s: the error shows the DSN key: %v", env, err)
		}
	}
}

func TestHealthTarget(t *testing.T) {
	for addr, want := range map[string]string{
		":8081": "127.0.0.1:8081", "0.0.0.0:8081": "127.0.0.1:8081", "[::]:8081": "127.0.0.1:8081",
		"127.0.0.1:9000": "127.0.0.1:9000", "10.1.2.3:8081": "10.1.2.3:8081", "[::1]:8081": "[::1]:8081",
	} {
		if got, err := HealthTarget([]string{"ENTRY_HEALTH_ADDR=" + addr}); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", addr, got, err, want)
		}
	}
	for _, addr := range []string{"", "8081", ":http", ":70000", ":0"} {
		got, err := HealthTarget([]string{"ENTRY_HEALTH_ADDR=" + addr})
		if err == nil {
			t.Errorf("%q: accepted as %q", addr, got)
		} else if !strings.HasPrefix(err.Error(), "ENTRY_HEALTH_ADDR: ") {
			t.Errorf("%q: %v does not name the variable", addr, err)
		}
	}
}

func TestPrintHidesTheSentryKey(t *testing.T) {
	p, err := Build([]string{"SENTRY_DSN=https://Zk3yS3cr3tKey:old@o1.ingest.example/42"}, Command)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p.Print(&b)
	if !strings.Contains(b.String(), "sentry: o1.ingest.example (from SENTRY_DSN)") || strings.Contains(b.String(), "Zk3yS3cr3tKey") || strings.Contains(b.String(), "old") {
		t.Errorf("entry config shows:\n%s", b.String())
	}
	p, _ = Build(nil, Command)
	b.Reset()
	p.Print(&b)
	if !strings.Contains(b.String(), "sentry: off") || !strings.Contains(b.String(), "user: entry's own") {
		t.Errorf("entry config shows:\n%s", b.String())
	}
}
