package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/entry-dev/entry/supervise"
)

// entry's own records are one line each, every line prefixed by the Output, and nothing a
// server or a URL holds reaches the log raw.
func TestTextLogOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	out := supervise.NewOutput(&stdout, &stderr, "text", false)
	out.Reserve("worker.1")
	log := newLogger(out.Entry(), "text", slog.LevelInfo)
	log.Error("postgres://db: failed to connect:\n\tserver said\r\x00 \x1b[2J bye", "err", errors.New("a\nb\u2028c\xff"), "host", "db\x00x")
	log.Info("plain", "k", "v w")
	got := stderr.String()
	want := `entry    | error: postgres://db: failed to connect:\n\tserver said\r\x00 \x1b[2J bye err="a\nb\u2028c\xff" host="db\x00x"` + "\n" +
		`entry    | plain k="v w"` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, l := range strings.SplitAfter(strings.TrimSuffix(got, "\n"), "\n") {
		if !strings.HasPrefix(l, "entry    | ") {
			t.Errorf("line without the prefix: %q", l)
		}
	}
	if strings.ContainsAny(got[:len(got)-1], "\x00\r\x1b") || strings.Count(got, "\n") != 2 {
		t.Errorf("control characters reached the log: %q", got)
	}
}
