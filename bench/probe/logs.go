package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lineLen is the length of every line write produces, newline included.
const lineLen = 80

// seqDigits is the width of a line's sequence number.
const seqDigits = 7

// writeCmd writes -n lines "NAME SEQ xxx...", each lineLen bytes, to stdout. Each write(2)
// carries whole lines, as many as fit in -buf bytes (1: one line per write, as an
// unbuffered Python print); with -raw, exactly -buf bytes whatever the line boundaries, as
// a block-buffered Python stdout flushes. With -done DIR it then records when it started
// and finished writing, and the CPU time it used, in DIR/NAME.done and waits until -of
// writers have, so that the writers of a run exit together: entry (like honcho) stops the
// group when the first process exits.
func writeCmd(args []string, stdout io.Writer) error {
	fs := flags("write")
	n := fs.Int("n", 300000, "lines to write")
	name := fs.String("name", "w1", "writer name, the first word of each line")
	buf := fs.Int("buf", 32<<10, "bytes per write(2) at most, rounded down to whole lines")
	raw := fs.Bool("raw", false, "write exactly -buf bytes each time, cutting lines")
	done := fs.String("done", "", "directory where finished writers meet")
	of := fs.Int("of", 1, "writers that meet in -done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	if len(*name)+seqDigits+2 >= lineLen || strings.ContainsAny(*name, " \n") {
		return fmt.Errorf("-name %q: too long or has blanks", *name)
	}
	if *buf < 1 {
		return fmt.Errorf("-buf %d: want at least 1", *buf)
	}
	line := []byte(*name + " " + strings.Repeat("0", seqDigits) + " ")
	line = append(line, bytes.Repeat([]byte("x"), lineLen-1-len(line))...)
	line = append(line, '\n')
	chunk := max(*buf/lineLen, 1) * lineLen
	if *raw {
		chunk = *buf
	}
	out := make([]byte, 0, chunk+lineLen)
	for i := 1; i <= *n; i++ {
		l := len(out)
		out = append(out, line...)
		seq := out[l+len(*name)+1 : l+len(*name)+1+seqDigits]
		for j, v := seqDigits-1, i; j >= 0; j, v = j-1, v/10 {
			seq[j] = byte('0' + v%10)
		}
		for len(out) >= chunk || (i == *n && len(out) > 0) {
			k := min(chunk, len(out))
			if _, err := stdout.Write(out[:k]); err != nil {
				return err
			}
			out = append(out[:0], out[k:]...)
		}
	}
	if *done == "" {
		return nil
	}
	end := time.Now()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	stamps := fmt.Sprintf("%d %d %d\n", start.UnixNano(), end.UnixNano(), ru.Utime.Nano()+ru.Stime.Nano())
	return meet(*done, *name, stamps, *of, time.Minute)
}

// meet marks name as finished in dir and returns once of writers have.
func meet(dir, name, stamps string, of int, timeout time.Duration) error {
	// Written under another name and renamed, so that a .done file is never seen empty.
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(stamps), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name+".done")); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		m, err := filepath.Glob(filepath.Join(dir, "*.done"))
		if err != nil {
			return err
		}
		if len(m) >= of {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d writers finished within %s", len(m), of, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// windowCmd prints, from the .done files of a directory, the seconds from the first
// writer's start to the last writer's end (how long the output path took to absorb the
// lines, without the start and the stop of the supervisor around them) and the CPU seconds
// the writers used.
func windowCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("want one directory")
	}
	files, err := filepath.Glob(filepath.Join(args[0], "*.done"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s: no writer finished", args[0])
	}
	var first, last, cpu int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var start, end, used int64
		if _, err := fmt.Sscan(string(b), &start, &end, &used); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if first == 0 || start < first {
			first = start
		}
		last = max(last, end)
		cpu += used
	}
	_, err = fmt.Fprintf(stdout, "%.4f %.4f\n", float64(last-first)/1e9, float64(cpu)/1e9)
	return err
}

// runCmd runs ARGV with this process's stdio, then appends to -o its wall time and the CPU
// time it and the descendants it waited for used, in seconds, and exits with its status.
func runCmd(args []string, stdout io.Writer) error {
	fs := flags("run")
	out := fs.String("o", "", "file the figures are appended to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *out == "" {
		return errors.New("want -o FILE and a command")
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return err
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%.4f %.4f\n", wall.Seconds(), cpu.Seconds())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return exitStatus(code)
	}
	return nil
}

// listenCmd is a supervisord event listener (subscribed to PROCESS_STATE events). Once
// every program named in -programs has exited, it sends SIGTERM to supervisord, its parent.
func listenCmd(args []string, stdout io.Writer) error {
	fs := flags("listen")
	programs := fs.String("programs", "w1,w2,w3", "programs to wait for, comma separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop := func() error { return unix.Kill(os.Getppid(), unix.SIGTERM) }
	return listen(os.Stdin, stdout, strings.Split(*programs, ","), stop)
}

// listen speaks supervisord's event listener protocol on in and out, and calls stop once,
// when every program has exited. It returns when in ends.
func listen(in io.Reader, out io.Writer, programs []string, stop func() error) error {
	waiting := map[string]bool{}
	for _, p := range programs {
		waiting[p] = true
	}
	r := bufio.NewReader(in)
	for {
		if _, err := io.WriteString(out, "READY\n"); err != nil {
			return err
		}
		hdr, err := r.ReadString('\n')
		if err == io.EOF && hdr == "" {
			return nil
		}
		if err != nil {
			return err
		}
		h := tokens(hdr)
		size, err := strconv.Atoi(h["len"])
		if err != nil {
			return fmt.Errorf("event header without len: %q", hdr)
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		switch h["eventname"] {
		case "PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL":
			delete(waiting, tokens(string(payload))["processname"])
		}
		if _, err := io.WriteString(out, "RESULT 2\nOK"); err != nil {
			return err
		}
		if waiting != nil && len(waiting) == 0 {
			waiting = nil // stop once
			if err := stop(); err != nil {
				return err
			}
		}
	}
}

// tokens splits supervisord's "key:value key:value" lines.
func tokens(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// tally is what check found in a log.
type tally struct {
	lines     int            // all lines
	intact    map[string]int // whole lines per writer, in order
	lost      int            // lines of the writers missing from the log
	cut       int            // lines that are not a whole writer line (split or glued)
	reordered int            // whole lines that came after a later one of the same writer
	other     int            // lines that are not the writers' at all (e.g. a supervisor's own)
}

func (t tally) complete(writers, n int) bool {
	for _, c := range t.intact {
		writers--
		if c != n {
			return false
		}
	}
	return writers == 0 && t.cut == 0 && t.reordered == 0
}

// checkCmd reads a log holding the lines of writers (-writers, -n lines each), with or
// without entry's "NAME.1 | " prefix, and prints what arrived whole. With -strict it fails
// unless every line arrived whole and in order.
func checkCmd(args []string, stdout io.Writer) error {
	fs := flags("check")
	n := fs.Int("n", 300000, "lines each writer wrote")
	writers := fs.String("writers", "w1,w2,w3", "writer names, comma separated")
	prefixed := fs.Bool("prefixed", false, "lines carry entry's \"NAME.1 | \" prefix")
	strict := fs.Bool("strict", false, "fail unless every line arrived whole and in order")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one log file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	names := strings.Split(*writers, ",")
	t, err := count(f, names, *n, *prefixed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lines=%d", t.lines)
	for _, w := range names {
		fmt.Fprintf(stdout, " %s=%d", w, t.intact[w])
	}
	fmt.Fprintf(stdout, " lost=%d cut=%d reordered=%d other=%d\n", t.lost, t.cut, t.reordered, t.other)
	if *strict && !t.complete(len(names), *n) {
		return fmt.Errorf("%s: not every line arrived whole and in order", fs.Arg(0))
	}
	return nil
}

func count(r io.Reader, writers []string, n int, prefixed bool) (tally, error) {
	t := tally{intact: map[string]int{}}
	next := map[string]int{}
	for _, w := range writers {
		t.intact[w] = 0
		next[w] = 1
	}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 256<<10), 16<<20)
	for s.Scan() {
		t.lines++
		line := s.Bytes()
		from := ""
		if prefixed {
			p, rest, ok := bytes.Cut(line, []byte(" | "))
			if !ok {
				t.other++
				continue
			}
			proc := string(bytes.TrimSpace(p))
			if proc == "entry" {
				t.other++
				continue
			}
			from, line = strings.TrimSuffix(proc, ".1"), rest
		}
		w, seq, ok := parseLine(line)
		switch {
		case !ok && looksLikeWriter(line, next):
			t.cut++
		case !ok:
			t.other++
		case from != "" && from != w, next[w] == 0:
			t.cut++ // a line under another writer's name, or an unknown writer
		case seq < next[w]:
			t.reordered++
		default:
			t.intact[w]++
			next[w] = seq + 1
		}
	}
	if err := s.Err(); err != nil {
		return t, err
	}
	for _, w := range writers {
		t.lost += n - t.intact[w]
	}
	return t, nil
}

// parseLine splits a whole writer line (without its newline) into name and number.
func parseLine(b []byte) (string, int, bool) {
	if len(b) != lineLen-1 {
		return "", 0, false
	}
	name, rest, ok := bytes.Cut(b, []byte(" "))
	if !ok || len(rest) < seqDigits+1 || rest[seqDigits] != ' ' {
		return "", 0, false
	}
	seq, err := strconv.Atoi(string(rest[:seqDigits]))
	if err != nil {
		return "", 0, false
	}
	for _, c := range rest[seqDigits+1:] {
		if c != 'x' {
			return "", 0, false
		}
	}
	return string(name), seq, true
}

// looksLikeWriter tells a damaged writer line (a fragment of x's, or one starting with a
// writer's name) from a line nobody in the run wrote.
func looksLikeWriter(b []byte, writers map[string]int) bool {
	if len(b) > 0 && len(bytes.Trim(b, "x")) == 0 {
		return true
	}
	for w := range writers {
		if bytes.HasPrefix(b, []byte(w+" ")) || bytes.Contains(b, []byte("x"+w+" ")) {
			return true
		}
	}
	return false
}
