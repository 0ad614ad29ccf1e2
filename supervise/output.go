package supervise

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// MaxLine is the longest line Output writes in one piece. A child that
// writes more without a newline has it split into lines of at most MaxLine
// bytes (at a UTF-8 boundary), so a runaway line cannot grow entry's memory.
const MaxLine = 64 << 10

// idleFlush is how long a partial line waits for its newline before it is
// written anyway, so that prompts show. It is long next to goreman's 2 ms:
// Python writes print()'s text and its newline in two writes, a child can
// be starved of CPU between them, and a cut line is worse than a prompt
// shown a little late.
const idleFlush = time.Second

// entryName is how entry's own lines are prefixed in text mode.
const entryName = "entry"

// Output multiplexes the output of several processes onto entry's stdout and
// stderr, one whole line at a time.
//
// In text mode each line is prefixed with the process name, padded to the
// longest name, and coloured per name when color is true:
//
//	web.1    | GET / 200
//	worker.1 | celery@host ready.
//
// In json mode each line becomes one object:
//
//	{"time":"2025-01-02T03:04:05.678Z","process":"web.1","stream":"stdout","line":"GET / 200"}
//
// Every write to stdout or stderr holds one lock and only whole lines, so
// lines are never cut or interleaved, whichever process or entry itself
// (through Entry) wrote them. Writes carry at most 4 KiB (PIPE_BUF) unless
// one line is longer, so that even a writer outside the lock cannot split
// them on a pipe.
type Output struct {
	stdout, stderr io.Writer
	json, color    bool
	now            func() time.Time

	mu     sync.Mutex // held for every write to stdout or stderr
	width  int
	colors map[string]string
	lines  *Incidents // keeps each process's last lines (KeepLines)
}

// NewOutput returns an Output writing to stdout and stderr; format is "text"
// or "json".
func NewOutput(stdout, stderr io.Writer, format string, color bool) *Output {
	return &Output{
		stdout: stdout,
		stderr: stderr,
		json:   format == "json",
		color:  color && format != "json",
		now:    time.Now,
		width:  len(entryName),
		colors: make(map[string]string),
	}
}

// palette holds the colours given to names in turn; no red, which reads as
// an error.
var palette = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

// Reserve pads every prefix to the longest of names from now on, so that lines
// written before the processes start (entry's own) line up with theirs.
func (o *Output) Reserve(names ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range names {
		o.width = max(o.width, len(n))
		if _, ok := o.colors[n]; !ok {
			o.colors[n] = palette[len(o.colors)%len(palette)]
		}
	}
}

func (o *Output) lineWriter(name, stream string) *lineWriter {
	o.Reserve(name)
	o.mu.Lock()
	defer o.mu.Unlock()
	w := &lineWriter{o: o, dst: o.stdout, name: name, keep: o.lines}
	if stream == "stderr" {
		w.dst = o.stderr
	}
	switch {
	case o.json:
		w.prefix = appendJSONString([]byte(`","process":`), name)
		w.prefix = append(w.prefix, `,"stream":`...)
		w.prefix = appendJSONString(w.prefix, stream)
		w.prefix = append(w.prefix, `,"line":`...)
	case o.color:
		w.prefix = []byte("\x1b[" + o.colors[name] + "m" + pad(name, o.width) + "\x1b[0m | ")
	default:
		w.prefix = []byte(pad(name, o.width) + " | ")
	}
	return w
}

// pipe is one output stream of a child: a pipe whose write end the child
// gets, and whose read end entry copies to a lineWriter.
//
// Owning the read end lets entry tell a child that paused mid-line from a
// line whose rest is already in the pipe but not read yet (entry itself was
// slow): a partial line is written only once the pipe has stayed empty for
// idleFlush. With os/exec's own pipes only the time between writes is
// known, and a busy entry would cut lines.
type pipe struct {
	child *os.File // for cmd.Stdout or cmd.Stderr; closed by started
	r     *os.File
	w     *lineWriter
	done  chan struct{}

	// settling is set by settle, and settled closed by copy once the pipe
	// is then found empty.
	settling atomic.Bool
	settled  chan struct{}
}

// pipe makes the pipe for stream of the process name and starts copying it.
func (o *Output) pipe(name, stream string) (*pipe, error) {
	r, child, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := &pipe{child: child, r: r, w: o.lineWriter(name, stream), done: make(chan struct{}), settled: make(chan struct{})}
	go p.copy()
	return p, nil
}

// started closes entry's copy of the child's end, so that the read end
// sees EOF once the child and whatever inherited the pipe are gone.
func (p *pipe) started() {
	p.child.Close()
}

// settle waits, at most until deadline, until what the pipe held when it
// was called has been written out, with a final partial line: all a child
// that has exited wrote. Unlike drain it does not wait for EOF, which a
// descendant still holding the pipe would put off for as long as it lives.
func (p *pipe) settle(deadline time.Time) {
	p.settling.Store(true)
	_ = p.r.SetReadDeadline(time.Now()) // wake a read that waits for data
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-p.settled:
	case <-p.done:
	case <-t.C:
	}
}

// drain waits until everything written to the pipe has been copied, which
// is when the last writer closed it, but not past deadline: a descendant
// that kept the pipe open is not waited for (os/exec's WaitDelay answers
// the same problem, golang/go#23019). Then it writes out the final partial
// line. Call it once, after started.
func (p *pipe) drain(deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	p.r.Close() // ends the copy if a descendant still holds the pipe
	<-p.done
	p.w.Close()
}

// abandon is drain for a child that never started.
func (p *pipe) abandon() {
	p.child.Close()
	p.drain(time.Now())
}

func (p *pipe) copy() {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	settled := false
	for {
		var flushAt time.Time
		if p.w.pending() {
			flushAt = time.Now().Add(idleFlush)
		}
		if err := p.r.SetReadDeadline(flushAt); err != nil {
			return
		}
		// After the deadline is set, so that settle's wake-up cannot be
		// overwritten unseen.
		if !settled && p.settling.Load() && !p.unread() {
			settled = true
			p.w.flushPartial()
			close(p.settled)
		}
		n, err := p.r.Read(buf)
		p.w.Write(buf[:n])
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// settle's wake-up is no reason to cut a line.
			if !flushAt.IsZero() && !time.Now().Before(flushAt) && !p.unread() {
				p.w.flushPartial()
			}
		case err != nil:
			return
		}
	}
}

// unread reports whether the pipe holds bytes not read yet.
func (p *pipe) unread() bool {
	rc, err := p.r.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
	})
	return n > 0
}

// Entry returns a writer for entry's own log records, one record per Write,
// going to stderr under the same lock as the children's lines. In text mode
// Output owns entry's prefix as it owns the children's: every line of the
// record gets "entry | ", padded like theirs, so that even a record of
// several lines never shows one without it. In JSON mode records pass as
// written.
func (o *Output) Entry() io.Writer {
	return entryWriter{o}
}

type entryWriter struct{ o *Output }

func (w entryWriter) Write(p []byte) (int, error) {
	o := w.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		return o.stderr.Write(p)
	}
	prefix := pad(entryName, o.width) + " | "
	b := make([]byte, 0, len(p)+len(prefix)+1)
	for rest := bytes.TrimSuffix(p, []byte("\n")); ; {
		line, more, found := bytes.Cut(rest, []byte("\n"))
		b = append(b, prefix...)
		b = append(b, line...)
		b = append(b, '\n')
		if !found {
			break
		}
		rest = more
	}
	if _, err := o.stderr.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// wrap routes cmd's stdout and stderr through o as the lines of name, in
// JSON mode only and unless cmd's stdin is a terminal: a JSON log must hold
// nothing but records, and an interactive program needs the terminal. It
// returns the pipes, for started and drain; none when it leaves cmd alone.
func (o *Output) wrap(cmd *exec.Cmd, name string) ([]*pipe, error) {
	if o == nil || !o.json || isTerminal(cmd.Stdin) {
		return nil, nil
	}
	var pipes []*pipe
	for _, stream := range []string{"stdout", "stderr"} {
		p, err := o.pipe(name, stream)
		if err != nil {
			for _, p := range pipes {
				p.abandon()
			}
			return nil, err
		}
		pipes = append(pipes, p)
	}
	cmd.Stdout, cmd.Stderr = pipes[0].child, pipes[1].child
	return pipes, nil
}

// isTerminal reports whether f is an *os.File on a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}

func pad(name string, width int) string {
	return name + strings.Repeat(" ", max(width-len(name), 0))
}

// lineWriter cuts one stream into lines. Its buffer only ever holds the
// current partial line, at most MaxLine bytes.
type lineWriter struct {
	o      *Output
	dst    io.Writer
	prefix []byte
	name   string
	keep   *Incidents

	mu      sync.Mutex
	partial []byte
	out     []byte // scratch for the formatted lines of one Write
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	w.out = w.out[:0]
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := i // how much of p belongs to the current line
		if i < 0 {
			end = len(p)
		}
		if len(w.partial)+end > MaxLine {
			cut := runeCut(p, MaxLine-len(w.partial))
			w.partial = append(w.partial, p[:cut]...)
			w.line(w.partial)
			w.partial = w.partial[:0]
			p = p[cut:]
			continue
		}
		if i < 0 {
			w.partial = append(w.partial, p...)
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i]...)
			w.line(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.line(p[:i])
		}
		p = p[i+1:]
	}
	w.flush()
	return n, nil
}

// Close writes out a final partial line.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writePartial()
	return nil
}

// pending reports whether a partial line waits for its newline.
func (w *lineWriter) pending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.partial) > 0
}

func (w *lineWriter) flushPartial() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writePartial()
}

// writePartial writes out the partial line, if any; w.mu is held.
func (w *lineWriter) writePartial() {
	if len(w.partial) == 0 {
		return
	}
	w.out = w.out[:0]
	w.line(w.partial)
	w.partial = w.partial[:0]
	w.flush()
}

// atomicWrite is PIPE_BUF: a write to a pipe up to this size is never
// interleaved with another process's or thread's write, even one that
// does not take the Output's lock.
const atomicWrite = 4096

// line formats one line into w.out. Whole lines from one Write are written
// together, up to atomicWrite bytes at a time (or one longer line), which
// keeps the syscalls per line well below one.
func (w *lineWriter) line(b []byte) {
	w.keep.line(w.name, b)
	start := len(w.out)
	if w.o.json {
		w.out = append(w.out, `{"time":"`...)
		w.out = w.o.now().UTC().AppendFormat(w.out, "2006-01-02T15:04:05.000Z07:00")
		w.out = append(w.out, w.prefix...)
		w.out = appendJSONString(w.out, string(b))
		w.out = append(w.out, "}\n"...)
	} else {
		w.out = append(w.out, w.prefix...)
		w.out = append(w.out, b...)
		w.out = append(w.out, '\n')
	}
	if len(w.out) > atomicWrite && start > 0 {
		w.write(w.out[:start])
		w.out = append(w.out[:0], w.out[start:]...)
	}
}

// flush writes out the formatted lines.
func (w *lineWriter) flush() {
	if len(w.out) == 0 {
		return
	}
	w.write(w.out)
	w.out = w.out[:0]
	if cap(w.out) > 4*MaxLine {
		w.out = nil // a burst of long lines must not pin a big buffer
	}
}

func (w *lineWriter) write(b []byte) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	_, _ = w.dst.Write(b)
}

// runeCut returns where to cut p, at most room bytes in, so that the next
// line does not start inside a UTF-8 sequence (unless p is not UTF-8 there).
func runeCut(p []byte, room int) int {
	for cut := room; cut > 0 && cut > room-utf8.UTFMax; cut-- {
		if utf8.RuneStart(p[cut]) {
			return cut
		}
	}
	return room
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
