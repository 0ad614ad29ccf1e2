package main

import (
	"bytes"
	"context"
	"github.com/entry-dev/entry/internal/redact"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// newLogger builds entry's own logger on w, the Output's writer for entry's records
// (supervise.Output.Entry), which owns the "entry | " prefix in text mode, as it owns the
// children's "web.1 | ". JSON records carry "logger":"entry".
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	if format == "json" {
		h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration})
		return slog.New(h).With("logger", "entry")
	}
	return slog.New(&textHandler{w: w, level: level, mu: new(sync.Mutex)})
}

// textHandler writes "msg key=value ..." with no timestamp: docker and kubectl add their
// own, and a second one only widens every line. One record is one line: control characters
// in the message or a value (a driver's multi-line error, a NUL or CR from a server or a
// URL) are escaped, never written raw.
type textHandler struct {
	w     io.Writer
	level slog.Level
	mu    *sync.Mutex
	attrs []slog.Attr
	group string
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(redact.Clean(r.Message))
	for _, a := range h.attrs {
		writeAttr(&b, h.group, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b.Bytes())
	return err
}

func writeAttr(b *bytes.Buffer, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, join(group, a.Key), g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(join(group, a.Key))
	b.WriteByte('=')
	var v string
	switch a.Value.Kind() {
	case slog.KindDuration:
		v = a.Value.Duration().Round(time.Millisecond).String()
	default:
		v = a.Value.String()
	}
	if v == "" || strings.ContainsAny(v, " \"=") || redact.Clean(v) != v {
		v = strconv.Quote(v)
	}
	b.WriteString(v)
}

func join(group, key string) string {
	if group == "" {
		return key
	}
	return group + "." + key
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &h2
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.group = join(h.group, name)
	return &h2
}

// readableDuration writes durations as "1.5s" rather than slog's nanosecond integers.
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().Round(time.Millisecond).String())
	}
	return a
}
