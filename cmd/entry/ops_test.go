package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestParseOps(t *testing.T) {
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\napp:x:1000:\n"), 0o644)
	const dsn = "https://Zk3yS3cr3tKey@o1.ingest.example/42"

	o, err := parseOpsFiles(envOf(map[string]string{"SENTRY_DSN": dsn, "SENTRY_RELEASE": "r1", "SENTRY_ENVIRONMENT": "prod"}), passwd, group)
	if err != nil || o.sentry.DSN != dsn || o.sentry.Release != "r1" || o.sentry.Environment != "prod" || o.sentryFrom != "SENTRY_DSN" {
		t.Errorf("SENTRY_DSN: %+v %v", o, err)
	}
	o, _ = parseOpsFiles(envOf(map[string]string{"SENTRY_DSN": dsn, "ENTRY_SENTRY_DSN": dsn + "1"}), passwd, group)
	if o.sentry.DSN != dsn+"1" || o.sentryFrom != "ENTRY_SENTRY_DSN" {
		t.Errorf("ENTRY_SENTRY_DSN does not win: %+v", o)
	}
	o, err = parseOpsFiles(envOf(map[string]string{"SENTRY_DSN": "not a dsn Zk3yS3cr3tKey", "ENTRY_SENTRY": "false"}), passwd, group)
	if err != nil || o.sentry.DSN != "" {
		t.Errorf("ENTRY_SENTRY=false: %+v %v", o, err)
	}
	o, err = parseOpsFiles(envOf(map[string]string{"ENTRY_USER": "app", "ENTRY_CHOWN": dir}), passwd, group)
	if err != nil || o.user == nil || o.user.UID != 1000 || len(o.chown) != 1 {
		t.Errorf("ENTRY_USER=app: %+v %v", o, err)
	}

	for env, want := range map[string]string{
		"SENTRY_DSN=https://Zk3yS3cr3tKey@/1":             "SENTRY_DSN:",
		"ENTRY_SENTRY_DSN=ftp://Zk3yS3cr3tKey@h/1":        "ENTRY_SENTRY_DSN:",
		"ENTRY_SENTRY=maybe":                              "ENTRY_SENTRY:",
		"SENTRY_DSN=" + dsn + " ENTRY_SENTRY_TIMEOUT=-1s": "ENTRY_SENTRY_TIMEOUT:",
		"ENTRY_CHOWN=" + dir:                              "ENTRY_CHOWN: is set but ENTRY_USER is not",
		"ENTRY_USER=ghost":                                "ENTRY_USER: user \"ghost\"",
		"ENTRY_USER=app ENTRY_CHOWN=" + dir + "/missing":  "ENTRY_CHOWN: " + dir + "/missing",
		"ENTRY_USER=app ENTRY_CHOWN=" + dir + "/passwd":   "not a directory",
		"ENTRY_USER=4242":                                 "give its group",
	} {
		kv := map[string]string{}
		for _, f := range strings.Fields(env) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		_, err := parseOpsFiles(envOf(kv), passwd, group)
		if err == nil || !strings.Contains(err.Error(), want) {
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
		if got, err := healthTarget(addr); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", addr, got, err, want)
		}
	}
	for _, addr := range []string{"", "8081", ":http", ":70000", ":0"} {
		if got, err := healthTarget(addr); err == nil {
			t.Errorf("%q: accepted as %q", addr, got)
		}
	}
}

func TestPrintOpsHidesTheKey(t *testing.T) {
	o, err := parseOpsFiles(envOf(map[string]string{"SENTRY_DSN": "https://Zk3yS3cr3tKey:old@o1.ingest.example/42"}), "/etc/passwd", "/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printOps(&b, o)
	if !strings.Contains(b.String(), "sentry: o1.ingest.example (from SENTRY_DSN)") || strings.Contains(b.String(), "Zk3yS3cr3tKey") || strings.Contains(b.String(), "old") {
		t.Errorf("entry config shows:\n%s", b.String())
	}
	printOps(&b, ops{})
	if !strings.Contains(b.String(), "sentry: off") {
		t.Errorf("entry config shows:\n%s", b.String())
	}
}
