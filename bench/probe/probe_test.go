package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want summary
	}{
		{[]float64{3, 1, 2}, summary{median: 2, min: 1, max: 3, n: 3}},
		{[]float64{4, 1, 3, 2}, summary{median: 2.5, min: 1, max: 4, n: 4}},
		{[]float64{7}, summary{median: 7, min: 7, max: 7, n: 1}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if got := summarize(nil); !math.IsNaN(got.median) || got.n != 0 {
		t.Errorf("summarize(nil) = %+v, want NaN and n 0", got)
	}
}

func TestNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{0.4567, "0.457"},
		{2.345, "2.35"},
		{12.34, "12.3"},
		{153.7, "154"},
		{9300, "9300"},
		{2, "2"},
		{math.NaN(), "n/a"},
	}
	for _, tt := range tests {
		if got := num(tt.in); got != tt.want {
			t.Errorf("num(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	rows := []row{
		{name: "tini", cols: []summary{{median: 2, min: 1, max: 3, n: 3}}},
		{name: "entry", cols: []summary{{median: 5, min: 4, max: 9, n: 3}}},
	}
	var b bytes.Buffer
	if err := writeTable(&b, "init", []string{""}, "ms", "tini", "", rows); err != nil {
		t.Fatal(err)
	}
	want := "| init | median (ms) | min (ms) | max (ms) | runs | × tini |\n" +
		"|---|--:|--:|--:|--:|--:|\n" +
		"| tini | 2 | 1 | 3 | 3 | ×1.00 |\n" +
		"| entry | 5 | 4 | 9 | 3 | ×2.50 |\n"
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if err := writeTable(&b, "init", []string{""}, "ms", "nope", "", rows); err == nil {
		t.Errorf("unknown -ref: got no error")
	}
}

func TestStatTicks(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"42 (tini) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 113741", 12, true},
		{"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 3 4 0 0 20 0 1 0 113741", 7, true},
		{"42 (x) S 1", 0, false},
		{"no paren", 0, false},
	}
	for _, tt := range tests {
		got, err := statTicks([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("statTicks(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// writes records the size of every Write.
type writes struct {
	bytes.Buffer
	sizes []int
}

func (w *writes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.Buffer.Write(p)
}

// writeLines runs the write command with -n n, -buf buf and the extra arguments.
func writeLines(t *testing.T, name string, n, buf int, extra ...string) *writes {
	t.Helper()
	var w writes
	args := append([]string{"-n", fmt.Sprint(n), "-buf", fmt.Sprint(buf), "-name", name}, extra...)
	if err := writeCmd(args, &w); err != nil {
		t.Fatal(err)
	}
	return &w
}

func TestWriteThenCount(t *testing.T) {
	tests := []struct {
		buf       int
		raw       bool
		wantFirst int // size of the first write
		wantLast  int // and of the last
	}{
		{buf: 1, wantFirst: lineLen, wantLast: lineLen},
		{buf: 100, wantFirst: lineLen, wantLast: lineLen},
		{buf: 32 << 10, wantFirst: 409 * lineLen, wantLast: 1000*lineLen - 409*lineLen*2},
		{buf: 8192, raw: true, wantFirst: 8192, wantLast: 1000*lineLen - 8192*9},
		{buf: 1, raw: true, wantFirst: 1, wantLast: 1},
	}
	for _, tt := range tests {
		var extra []string
		if tt.raw {
			extra = []string{"-raw"}
		}
		w := writeLines(t, "w1", 1000, tt.buf, extra...)
		out := w.String()
		if got, want := len(out), 1000*lineLen; got != want {
			t.Fatalf("buf %d raw %v: wrote %d bytes, want %d", tt.buf, tt.raw, got, want)
		}
		if first, last := w.sizes[0], w.sizes[len(w.sizes)-1]; first != tt.wantFirst || last != tt.wantLast {
			t.Errorf("buf %d raw %v: writes of %d ... %d bytes, want %d ... %d", tt.buf, tt.raw, first, last, tt.wantFirst, tt.wantLast)
		}
		got, err := count(strings.NewReader(out), []string{"w1"}, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if !got.complete(1, 1000) || got.lines != 1000 {
			t.Errorf("buf %d raw %v: got %+v, want 1000 whole lines", tt.buf, tt.raw, got)
		}
	}
}

func TestCount(t *testing.T) {
	l := func(name string, seq int) string {
		return strings.Split(writeLines(t, name, seq, 1).String(), "\n")[seq-1]
	}
	tests := []struct {
		name     string
		log      []string
		prefixed bool
		want     tally
	}{
		{
			name: "whole",
			log:  []string{l("w1", 1), l("w2", 1), l("w1", 2), l("w2", 2)},
			want: tally{lines: 4, intact: map[string]int{"w1": 2, "w2": 2}},
		},
		{
			name: "lost and reordered",
			log:  []string{l("w1", 2), l("w1", 1), l("w2", 1), l("w2", 2)},
			want: tally{lines: 4, intact: map[string]int{"w1": 1, "w2": 2}, lost: 1, reordered: 1},
		},
		{
			name: "cut and glued",
			log:  []string{l("w1", 1)[:30], l("w2", 1), l("w1", 1)[30:], l("w2", 2)[:20] + l("w1", 2)},
			want: tally{lines: 4, intact: map[string]int{"w1": 0, "w2": 1}, lost: 3, cut: 3},
		},
		{
			name: "supervisor's own line",
			log:  []string{"2026-01-01 00:00:00,000 WARN received SIGTERM", l("w1", 1), l("w1", 2), l("w2", 1), l("w2", 2)},
			want: tally{lines: 5, intact: map[string]int{"w1": 2, "w2": 2}, other: 1},
		},
		{
			name:     "prefixed",
			log:      []string{"w1.1  | " + l("w1", 1), "w2.1  | " + l("w2", 1), "w1.1  | " + l("w1", 2), "w2.1  | " + l("w2", 2)},
			prefixed: true,
			want:     tally{lines: 4, intact: map[string]int{"w1": 2, "w2": 2}},
		},
		{
			name:     "prefixed under the wrong name",
			log:      []string{"w2.1  | " + l("w1", 1), "w1.1  | " + l("w1", 2), "w2.1  | " + l("w2", 1), "w2.1  | " + l("w2", 2)},
			prefixed: true,
			want:     tally{lines: 4, intact: map[string]int{"w1": 1, "w2": 2}, lost: 1, cut: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := count(strings.NewReader(strings.Join(tt.log, "\n")+"\n"), []string{"w1", "w2"}, 2, tt.prefixed)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.complete(2, 2) != (tt.want.lost == 0 && tt.want.cut == 0 && tt.want.reordered == 0) {
				t.Errorf("complete = %v for %+v", got.complete(2, 2), got)
			}
		})
	}
}

func TestListen(t *testing.T) {
	event := func(name, process string) string {
		payload := "processname:" + process + " groupname:" + process + " from_state:RUNNING expected:1 pid:7"
		return fmt.Sprintf("ver:3.0 server:supervisor serial:1 pool:stopper poolserial:1 eventname:%s len:%d\n%s",
			name, len(payload), payload)
	}
	in := event("PROCESS_STATE_RUNNING", "w1") +
		event("PROCESS_STATE_EXITED", "w1") +
		event("PROCESS_STATE_EXITED", "stopper") +
		event("PROCESS_STATE_FATAL", "w2") +
		event("PROCESS_STATE_EXITED", "w2")
	stops := 0
	var out bytes.Buffer
	err := listen(strings.NewReader(in), &out, []string{"w1", "w2"}, func() error { stops++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if stops != 1 {
		t.Errorf("stop called %d times, want 1", stops)
	}
	if got, want := strings.Count(out.String(), "RESULT 2\nOK"), 5; got != want {
		t.Errorf("answered %d events, want %d", got, want)
	}
}
