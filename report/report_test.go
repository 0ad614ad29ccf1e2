package report_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/report"
	"github.com/entry-dev/entry/report/reporttest"
)

func TestIncidentArrivesOnce(t *testing.T) {
	srv := reporttest.New(t)
	r, err := report.New(report.Options{
		DSN: srv.DSN(), Release: "app@1.2.3", Environment: "staging", ServerName: "web-7f9c",
		Secrets: []string{"s3cret-Pw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Incident(report.Event{
		Kind: report.KindRelease, Phase: "release", Process: "release.1",
		Cause:  "release step release.1 failed with status 3",
		Status: 3,
		Lines:  []string{"Applying app.0002...", "django.db.utils.OperationalError: postgres://app:s3cret-Pw@db/app", "token s3cret-Pw"},
	})
	r.Flush()
	evs := srv.Wait(t, 1, 5*time.Second)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	e := evs[0]
	for k, want := range map[string]string{"release": "app@1.2.3", "environment": "staging", "server_name": "web-7f9c", "message": "release step release.1 failed with status 3"} {
		if got, _ := e[k].(string); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]string{"phase": "release", "process": "release.1", "incident": "release", "status": "3"} {
		if got := e.Tag(k); got != want {
			t.Errorf("tag %s = %q, want %q", k, got, want)
		}
	}
	out, _ := e.Incident()["output"].([]any)
	if len(out) != 3 || out[0] != "Applying app.0002..." {
		t.Errorf("output lines: %v", out)
	}
	text := e.Text()
	if strings.Contains(text, "s3cret-Pw") || strings.Contains(text, reporttest.Key) {
		t.Errorf("a secret is in the event: %s", text)
	}
}

func TestEmptyReleaseStaysEmpty(t *testing.T) {
	srv := reporttest.New(t)
	r, err := report.New(report.Options{DSN: srv.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	r.Incident(report.Event{Kind: report.KindCrashLoop, Phase: "running", Process: "worker.1", Cause: "worker.1 is crash-looping"})
	r.Flush()
	e := srv.Wait(t, 1, 5*time.Second)[0]
	if rel, ok := e["release"]; ok {
		t.Errorf("release = %v, want none", rel)
	}
}

func TestUnreachableCostsOneWarning(t *testing.T) {
	srv := reporttest.New(t)
	dsn := srv.DSN()
	srv.Close()
	var log bytes.Buffer
	r, err := report.New(report.Options{DSN: dsn, Timeout: time.Second, Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r.Incident(report.Event{Kind: report.KindKilled, Phase: "running", Process: "web.1", Cause: "web.1 killed by SIGKILL"})
	}
	r.Flush()
	if n := strings.Count(log.String(), "cannot report to Sentry"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), reporttest.Key) {
		t.Errorf("the DSN key is in the log:\n%s", log.String())
	}
}

func TestNilReporter(t *testing.T) {
	r, err := report.New(report.Options{})
	if r != nil || err != nil {
		t.Fatalf("New without DSN = %v, %v; want nil, nil", r, err)
	}
	r.Incident(report.Event{Cause: "x"})
	r.Flush()
}

func TestCheckDSN(t *testing.T) {
	for _, dsn := range []string{
		"https://Zk3yS3cr3t@o1.ingest.sentry.io/123",
		"http://Zk3yS3cr3t@127.0.0.1:9000/7",
		"https://Zk3yS3cr3t:legacy@sentry.example/sub/path/9",
	} {
		if err := report.CheckDSN(dsn); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
		if _, err := report.New(report.Options{DSN: dsn}); err != nil {
			t.Errorf("New(%s): %v", dsn, err)
		}
	}
	for _, dsn := range []string{
		"Zk3yS3cr3t", "ftp://Zk3yS3cr3t@host/1", "https://host/1", "https://Zk3yS3cr3t@/1",
		"https://Zk3yS3cr3t@host", "https://Zk3yS3cr3t@host/", "https://Zk3yS3cr3t@host:bad/1", "http://Zk3yS3cr3t@[::1/1",
	} {
		err := report.CheckDSN(dsn)
		if err == nil {
			t.Errorf("%s: accepted", dsn)
			continue
		}
		if strings.Contains(err.Error(), "Zk3yS3cr3t") {
			t.Errorf("the error quotes the key: %v", err)
		}
		if _, err := report.New(report.Options{DSN: dsn}); err == nil || strings.Contains(err.Error(), "Zk3yS3cr3t") {
			t.Errorf("New(%s): %v", dsn, err)
		}
	}
}
