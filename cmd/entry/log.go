package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
}

// newLogger builds entry's own logger. Text lines start with "entry | " so they stand apart
// from the children's "web.1 | " lines; JSON records carry "logger":"entry".
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	if format == "json" {
		h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration})
		return slog.New(h).With("logger", "entry")
	}
	return slog.New(&textHandler{w: w, level: level, mu: new(sync.Mutex)})
}

// textHandler writes "entry | msg key=value ..." with no timestamp: docker and kubectl
// add their own, and a second one only widens every line.
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
	b.WriteString("entry | ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(r.Message)
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
	if v == "" || strings.ContainsAny(v, " \t\"=\n") {
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
