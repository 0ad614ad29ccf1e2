package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Bounds of one run: no run of a benchmark may hang it.
const (
	readyTimeout = 10 * time.Second
	exitTimeout  = 30 * time.Second
)

// termCmd times SIGTERM to exit of a namespace's PID 1 (ARGV: unshare ... INIT ...), once
// its main process has printed a line "ready" and -count processes called -comm run below
// it. Both are needed with a shell: "ready" says that it has recorded their pids, and the
// count that they have exec'd, so a signal can no longer fall between fork and exec, where
// the shell's own handler would swallow it.
func termCmd(args []string, stdout io.Writer) error {
	fs := flags("term")
	runs := fs.Int("runs", 30, "number of runs")
	want := fs.Int("status", 143, "exit status every run must end with (-1 = any)")
	comm := fs.String("comm", "sleep", "command name of the processes to wait for")
	count := fs.Int("count", 3, "how many of them")
	line := fs.String("ready", "ready", `line to wait for on stdout ("" = none)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ready := func(r *nsRun) (func(), error) {
		var err error
		if *line != "" {
			err = r.waitLine(r.stdout, func(l string) bool { return l == *line }, readyTimeout)
		}
		var pid int
		if err == nil {
			pid, err = r.pid1(readyTimeout)
		}
		if err == nil {
			err = r.waitComm(pid, *comm, *count, readyTimeout)
		}
		return func() {}, err
	}
	for i := 0; i < *runs; i++ {
		d, err := once(fs.Args(), nil, ready, *want)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(stdout, "%.3f\n", ms(d))
	}
	return nil
}

// waitCmd times SIGTERM to exit of "entry wait" (ARGV) as PID 1 while it waits for a
// dependency that refuses connections, or for a Postgres that accepts and never answers.
func waitCmd(args []string, stdout io.Writer) error {
	fs := flags("wait")
	runs := fs.Int("runs", 30, "number of runs")
	mode := fs.String("mode", "refused", "refused: a closed port; silent: a server that accepts and never answers")
	want := fs.Int("status", 143, "exit status every run must end with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode != "refused" && *mode != "silent" {
		return fmt.Errorf("-mode %q: want refused or silent", *mode)
	}
	for i := 0; i < *runs; i++ {
		var env []string
		var ready func(r *nsRun) (func(), error)
		switch *mode {
		case "refused":
			port, err := closedPort()
			if err != nil {
				return err
			}
			env = []string{fmt.Sprintf("ENTRY_WAIT=tcp://127.0.0.1:%d", port)}
			ready = func(r *nsRun) (func(), error) {
				// entry logs the first refusal: its wait loop is running, backing off.
				err := r.waitLine(r.stderr, func(l string) bool { return strings.Contains(l, "not ready") }, readyTimeout)
				return func() {}, err
			}
		case "silent":
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			env = []string{fmt.Sprintf("ENTRY_WAIT=postgres://bench@%s/bench", ln.Addr())}
			ready = func(r *nsRun) (func(), error) { return silentServer(r, ln) }
		}
		d, err := once(fs.Args(), env, ready, *want)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(stdout, "%.3f\n", ms(d))
	}
	return nil
}

// once starts argv, waits until ready says it is in place, and times SIGTERM to the exit of
// the namespace's PID 1; the run must then end with status want. ready returns what to
// release once the run is over.
func once(argv, env []string, ready func(*nsRun) (func(), error), want int) (time.Duration, error) {
	r, err := startNS(argv, env)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (time.Duration, error) {
		r.abort()
		<-r.exited
		return 0, fmt.Errorf("%w%s", err, r.output())
	}
	release, err := ready(r)
	if err != nil {
		return fail(err)
	}
	defer release()
	pid, err := r.pid1(readyTimeout)
	if err != nil {
		return fail(err)
	}
	d, err := stopLatency(pid, exitTimeout)
	if err != nil {
		return fail(fmt.Errorf("%w; processes left:%s", err, describe(pid)))
	}
	status, err := r.status(readyTimeout)
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, r.output())
	}
	if want >= 0 && status != want {
		return 0, fmt.Errorf("exit status %d, want %d%s", status, want, r.output())
	}
	return d, nil
}

// silentServer waits until the run connects to ln and sends its first bytes, then keeps
// the connection open, unanswered, until the returned function is called.
func silentServer(r *nsRun, ln net.Listener) (func(), error) {
	type result struct {
		conn net.Conn
		err  error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		got <- result{c, err}
	}()
	closeAll := func(c net.Conn) func() {
		return func() {
			ln.Close()
			if c != nil {
				c.Close()
			}
		}
	}
	select {
	case res := <-got:
		if res.err != nil {
			closeAll(res.conn)()
			return func() {}, fmt.Errorf("silent server: %w", res.err)
		}
		return closeAll(res.conn), nil
	case <-r.exited:
		ln.Close()
		return func() {}, fmt.Errorf("exited before it connected")
	case <-time.After(readyTimeout):
		ln.Close() // ends the Accept
		if res := <-got; res.conn != nil {
			res.conn.Close()
		}
		return func() {}, fmt.Errorf("no connection within %s", readyTimeout)
	}
}

// closedPort returns a local TCP port that nothing listens on (it was free a moment ago).
func closedPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
