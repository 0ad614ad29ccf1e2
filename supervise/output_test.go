package supervise

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a destination that checks each Write: whole lines only,
// and not above PIPE_BUF unless it is a single line.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	bad    []string
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	if len(p) > 0 && p[len(p)-1] != '\n' {
		b.bad = append(b.bad, fmt.Sprintf("write %d does not end a line", b.writes))
	}
	if n := bytes.Count(p, []byte("\n")); len(p) > atomicWrite && n > 1 {
		b.bad = append(b.bad, fmt.Sprintf("write %d has %d bytes in %d lines", b.writes, len(p), n))
	}
	return b.buf.Write(p)
}

// check reports the bad writes seen.
func (b *lockedBuffer) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bad := range b.bad {
		t.Error(bad)
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestOutputText(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"one line", []string{"hello\n"}, "web.1    | hello\n"},
		{"lines in one write", []string{"a\nb\n\nc\n"}, "web.1    | a\nweb.1    | b\nweb.1    | \nweb.1    | c\n"},
		{"line across writes", []string{"he", "llo", " world\nnext"}, "web.1    | hello world\nweb.1    | next\n"},
		{"partial flushed on close", []string{"prompt> "}, "web.1    | prompt> \n"},
		{"crlf kept", []string{"a\r\n"}, "web.1    | a\r\n"},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		var stdout, stderr lockedBuffer
		o := NewOutput(&stdout, &stderr, "text", false)
		o.Reserve("worker.1")
		w := o.lineWriter("web.1", "stdout")
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("%s: Write(%q) = %d, %v", tt.name, s, n, err)
			}
		}
		w.Close()
		if got := stdout.String(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if got := stderr.String(); got != "" {
			t.Errorf("%s: got stderr %q, want none", tt.name, got)
		}
		stdout.check(t)
	}
}

func TestOutputStreamsAndColor(t *testing.T) {
	var stdout, stderr lockedBuffer
	o := NewOutput(&stdout, &stderr, "text", true)
	out, errw := o.lineWriter("web.1", "stdout"), o.lineWriter("web.1", "stderr")
	other := o.lineWriter("worker.1", "stdout")
	fmt.Fprintln(out, "to stdout")
	fmt.Fprintln(errw, "to stderr")
	fmt.Fprintln(other, "other")
	if got, want := stdout.String(), "\x1b[36mweb.1\x1b[0m | to stdout\n\x1b[33mworker.1\x1b[0m | other\n"; got != want {
		t.Errorf("got stdout %q, want %q", got, want)
	}
	if got, want := stderr.String(), "\x1b[36mweb.1\x1b[0m | to stderr\n"; got != want {
		t.Errorf("got stderr %q, want %q", got, want)
	}
}

func TestOutputEntry(t *testing.T) {
	var stdout, stderr lockedBuffer
	o := NewOutput(&stdout, &stderr, "text", false)
	fmt.Fprint(o.Entry(), "short\n")
	o.Reserve("worker.1")
	fmt.Fprint(o.Entry(), "started process=worker.1\n")
	fmt.Fprint(o.Entry(), "error: two\nlines\n")
	want := "entry | short\nentry    | started process=worker.1\nentry    | error: two\nentry    | lines\n"
	if got := stderr.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	stderr = lockedBuffer{}
	o = NewOutput(&stdout, &stderr, "json", false)
	o.Reserve("worker.1")
	rec := `{"level":"INFO","msg":"entry | x"}` + "\n"
	fmt.Fprint(o.Entry(), rec)
	if got := stderr.String(); got != rec {
		t.Errorf("json: got %q, want the record as written", got)
	}
}

func TestOutputJSON(t *testing.T) {
	var stdout, stderr lockedBuffer
	o := NewOutput(&stdout, &stderr, "json", true)
	o.now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC) }
	w := o.lineWriter("web.1", "stderr")
	lines := []string{"plain", `quote " back \ slash`, "tab\tbell\x07del\x7f", "caf\xc3\xa9 \xff invalid", "\u2028 sep", ""}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprint(w, "partial")
	w.Close()
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	var got []string
	for sc.Scan() {
		var rec struct{ Time, Process, Stream, Line string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		if rec.Time != "2025-01-02T03:04:05.678Z" || rec.Process != "web.1" || rec.Stream != "stderr" {
			t.Errorf("got %+v, want time, process web.1, stream stderr", rec)
		}
		got = append(got, rec.Line)
	}
	want := append(append([]string{}, lines...), "partial")
	want[3] = "café \ufffd invalid"
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got lines %q, want %q", got, want)
	}
	if first := strings.SplitN(stderr.String(), "\n", 2)[0]; !strings.HasPrefix(first, `{"time":"2025-01-02T03:04:05.678Z","process":"web.1","stream":"stderr","line":"plain"}`) {
		t.Errorf("got first line %s, want the documented field order", first)
	}
}

func TestOutputLongLines(t *testing.T) {
	var stdout lockedBuffer
	o := NewOutput(&stdout, &stdout, "text", false)
	w := o.lineWriter("web.1", "stdout")
	// 150 KiB without a newline, in odd pieces, with a 3-byte rune
	// straddling the first cut.
	long := strings.Repeat("a", MaxLine-1) + "€" + strings.Repeat("b", 150<<10-MaxLine-2)
	for s := long; len(s) > 0; {
		n := min(len(s), 7777)
		w.Write([]byte(s[:n]))
		s = s[n:]
	}
	w.Write([]byte("\nshort\n"))
	w.Close()
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		l, ok := strings.CutPrefix(l, "web.1 | ")
		if !ok {
			t.Fatalf("line without prefix: %.40q", l)
		}
		if len(l) > MaxLine {
			t.Errorf("got a line of %d bytes, want at most %d", len(l), MaxLine)
		}
		got = append(got, l)
	}
	if len(got) != 4 || got[3] != "short" {
		t.Fatalf("got %d lines, want 3 pieces and %q", len(got), "short")
	}
	if joined := got[0] + got[1] + got[2]; joined != long {
		t.Errorf("pieces do not add up to the long line")
	}
	if !strings.HasPrefix(got[1], "€") {
		t.Errorf("first cut split a rune: second piece starts %q", got[1][:3])
	}
	stdout.check(t)
}

// TestOutputConcurrent writes from many goroutines, in random chunks, and
// checks that every line arrives whole.
func TestOutputConcurrent(t *testing.T) {
	var stdout lockedBuffer
	o := NewOutput(&stdout, &stdout, "text", false)
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for i := range writers {
		w := o.lineWriter(fmt.Sprintf("p.%d", i), "stdout")
		wg.Go(func() {
			defer w.Close()
			var b bytes.Buffer
			for n := range lines {
				fmt.Fprintf(&b, "%d %s\n", n, strings.Repeat("x", n%300))
			}
			data := b.Bytes()
			for k := 1; len(data) > 0; k = k*7%1000 + 1 {
				n := min(k, len(data))
				w.Write(data[:n])
				data = data[n:]
			}
		})
	}
	wg.Wait()
	stdout.check(t)
	next := make(map[string]int)
	for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		name, rest, ok := strings.Cut(l, " | ")
		name = strings.TrimSpace(name)
		num, xs, _ := strings.Cut(rest, " ")
		if !ok || num != fmt.Sprint(next[name]) || xs != strings.Repeat("x", next[name]%300) {
			t.Fatalf("%s: got line %q, want number %d", name, l, next[name])
		}
		next[name]++
	}
	for i := range writers {
		if got := next[fmt.Sprintf("p.%d", i)]; got != lines {
			t.Errorf("p.%d: got %d lines, want %d", i, got, lines)
		}
	}
}

func BenchmarkOutput(b *testing.B) {
	var sink countWriter
	o := NewOutput(&sink, &sink, "text", false)
	w := o.lineWriter("web.1", "stdout")
	chunk := bytes.Repeat([]byte("GET /api/items?page=2 HTTP/1.1 200 1234 0.003\n"), 700)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		w.Write(chunk)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestOutputPipe feeds a pipe as a child would: lines, a pause mid-line
// shorter than the idle delay, a prompt, and a descendant that keeps the
// pipe open after the child is gone.
func TestOutputPipe(t *testing.T) {
	var stdout lockedBuffer
	o := NewOutput(&stdout, &stdout, "text", false)
	p, err := o.pipe("web.1", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	child := p.child
	fd, err := syscall.Dup(int(child.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	descendant := os.NewFile(uintptr(fd), "descendant")
	defer descendant.Close()
	p.started() // entry's copy of the child's end

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for stdout.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("got %q, want %q", stdout.String(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	descendant.Write([]byte("one\ntw"))
	waitFor("web.1 | one\n")
	descendant.Write([]byte("o\nPassword: "))
	waitFor("web.1 | one\nweb.1 | two\nweb.1 | Password: \n")

	descendant.Write([]byte("last words"))
	start := time.Now()
	p.drain(time.Now().Add(100 * time.Millisecond))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("drain took %v with a descendant holding the pipe", took)
	}
	waitFor("web.1 | one\nweb.1 | two\nweb.1 | Password: \nweb.1 | last words\n")
}
