package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lineLen is the length of every line write produces, newline included.
const lineLen = 80

// seqDigits is the width of a line's sequence number.
const seqDigits = 7

// writeCmd writes -n lines "NAME SEQ xxx...", each lineLen bytes, to stdout in writes of
// -buf bytes (1: one write per line, as an unbuffered Python print does). With -done DIR it
// then waits until -of writers have finished, so that the writers of a run exit together:
// entry (like honcho) stops the group when the first process exits.
func writeCmd(args []string, stdout io.Writer) error {
	fs := flags("write")
	n := fs.Int("n", 300000, "lines to write")
	name := fs.String("name", "w1", "writer name, the first word of each line")
	buf := fs.Int("buf", 32<<10, "bytes per write(2); 1 writes each line on its own")
	done := fs.String("done", "", "directory where finished writers meet")
	of := fs.Int("of", 1, "writers that meet in -done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(*name)+seqDigits+2 >= lineLen || strings.ContainsAny(*name, " \n") {
		return fmt.Errorf("-name %q: too long or has blanks", *name)
	}
	w := bufio.NewWriterSize(stdout, max(*buf, lineLen))
	line := []byte(*name + " " + strings.Repeat("0", seqDigits) + " ")
	line = append(line, bytes.Repeat([]byte("x"), lineLen-1-len(line))...)
	line = append(line, '\n')
	seq := line[len(*name)+1 : len(*name)+1+seqDigits]
	for i := 1; i <= *n; i++ {
		v := i
		for j := seqDigits - 1; j >= 0; j-- {
			seq[j] = byte('0' + v%10)
			v /= 10
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if *buf <= 1 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if *done == "" {
		return nil
	}
	return meet(*done, *name, *of, time.Minute)
}

// meet marks name as finished in dir and returns once of writers have.
func meet(dir, name string, of int, timeout time.Duration) error {
	if err := os.WriteFile(filepath.Join(dir, name+".done"), nil, 0o644); err != nil {
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

// listenCmd is a supervisord event listener (subscribed to PROCESS_STATE events). Once
// every program named in -programs has exited, it sends SIGTERM to supervisord, its parent.
func listenCmd(args []string, stdout io.Writer) error {
	fs := flags("listen")
	programs := fs.String("programs", "w1,w2,w3", "programs to wait for, comma separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	waiting := map[string]bool{}
	for _, p := range strings.Split(*programs, ",") {
		waiting[p] = true
	}
	in := bufio.NewReader(os.Stdin)
	for {
		if _, err := io.WriteString(stdout, "READY\n"); err != nil {
			return err
		}
		hdr, err := in.ReadString('\n')
		if err != nil {
			return err
		}
		h := tokens(hdr)
		size, err := strconv.Atoi(h["len"])
		if err != nil {
			return fmt.Errorf("event header without len: %q", hdr)
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(in, payload); err != nil {
			return err
		}
		switch h["eventname"] {
		case "PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL":
			delete(waiting, tokens(string(payload))["processname"])
		}
		if _, err := io.WriteString(stdout, "RESULT 2\nOK"); err != nil {
			return err
		}
		if len(waiting) == 0 {
			waiting = nil // signal once
			if err := unix.Kill(os.Getppid(), unix.SIGTERM); err != nil {
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
