package supervise

// TestGroupHelper is an entry-like PID 1 in Procfile mode, wired as
// cmd/entry wires RunGroup; TestGroupChild is a Procfile child with canned
// behaviours. Both run only inside the test binary started with
// SUPERVISE_HELPER=1, arguments after the first "--".

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/procfile"
	"golang.org/x/sys/unix"
)

func TestGroupHelper(t *testing.T) {
	if args, ok := helperArgs(); ok {
		os.Exit(groupMain(args))
	}
}

func TestGroupChild(t *testing.T) {
	if args, ok := helperArgs(); ok {
		os.Exit(groupChild(args))
	}
}

// groupMain runs the Procfile given with -procfile.
func groupMain(args []string) int {
	sigs := make(chan os.Signal, 2048)
	if err := Notify(sigs); err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		return 1
	}
	chld := make(chan os.Signal, 2048)
	signal.Notify(chld, syscall.SIGCHLD)

	fs := flag.NewFlagSet("group", flag.ContinueOnError)
	path := fs.String("procfile", "", "Procfile")
	policy := fs.String("restart", "on-failure", "restart policy")
	limit := fs.Int("limit", 5, "restart limit")
	window := fs.Duration("window", time.Minute, "restart window")
	initial := fs.Duration("initial", 50*time.Millisecond, "first backoff")
	maxDelay := fs.Duration("max", time.Second, "longest backoff")
	timeout := fs.Duration("timeout", 5*time.Second, "stop timeout")
	timeouts := fs.String("timeouts", "", "type=DURATION,... stop timeouts of some types")
	delay := fs.Duration("delay", 0, "shutdown delay")
	format := fs.String("format", "text", "text or json")
	health := fs.Bool("health", false, "serve health on a free port")
	stopSigs := fs.String("stop", "", "type=SIGNAL,... stop signals")
	release := fs.String("release", "", "a shell command run through Run first, on the terminal, as a release step")
	showPidfds := fs.Bool("pidfds", false, "print how many pidfds are open at the end")
	standby := fs.String("standby", "", "types held in standby, comma separated")
	leaseFIFO := fs.String("leases", "", `FIFO of lines "grant TYPE" or "revoke TYPE"`)
	if err := fs.Parse(args); err != nil {
		return 64
	}
	out := NewOutput(os.Stdout, os.Stderr, *format, false)
	log := slog.New(slog.NewTextHandler(out.Entry(), &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	if os.Getpid() != 1 {
		if err := SetSubreaper(); err != nil {
			log.Error("subreaper", "err", err)
			return 1
		}
	}
	f, err := os.Open(*path)
	if err != nil {
		log.Error("procfile", "err", err)
		return 78
	}
	entries, err := procfile.Parse(f)
	f.Close()
	if err != nil {
		log.Error("procfile", "err", err)
		return 78
	}
	stop := map[string]syscall.Signal{}
	for _, kv := range strings.FieldsFunc(*stopSigs, func(r rune) bool { return r == ',' }) {
		typ, name, _ := strings.Cut(kv, "=")
		stop[typ] = unix.SignalNum(name)
	}
	grace := map[string]time.Duration{}
	for _, kv := range strings.FieldsFunc(*timeouts, func(r rune) bool { return r == ',' }) {
		typ, d, _ := strings.Cut(kv, "=")
		grace[typ], _ = time.ParseDuration(d)
	}
	var procs []Process
	for _, e := range entries {
		t, ok := grace[e.Type]
		if !ok {
			t = *timeout
		}
		argv, group := procfile.Argv(e.Command)
		procs = append(procs, Process{
			Name:  e.Type + ".1",
			Type:  e.Type,
			Cmd:   func() *exec.Cmd { return exec.Command(argv[0], argv[1:]...) },
			Stop:  StopPolicy{Signal: stop[e.Type], Timeout: t},
			Group: group,
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := NewReaper(ctx, chld, log)
	h := NewHealth()
	if *health {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Error("health", "err", err)
			return 1
		}
		go http.Serve(ln, h.Handler())
		log.Info("health", "addr", ln.Addr().String())
	}
	if *release != "" {
		cmd := exec.Command("/bin/sh", "-c", *release)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		res, err := Run(ctx, r, cmd, sigs, RunOptions{Stop: StopPolicy{Timeout: *timeout}, Log: log, Output: out, Name: "release"})
		if err != nil || res.Exit.Status() != 0 {
			log.Error("release failed", "exit", res.Exit.String(), "err", err)
			return 1
		}
	}
	h.SetPhase("running")
	leases, leasesLogged := helperLeases(*leaseFIFO, log)
	status := RunGroup(ctx, r, procs, sigs, GroupOptions{
		Restart:       Restart{Policy: *policy, Limit: *limit, Window: *window, Initial: *initial, Max: *maxDelay},
		ShutdownDelay: *delay,
		Output:        out,
		Health:        h,
		Log:           log,
		Standby:       strings.FieldsFunc(*standby, func(r rune) bool { return r == ',' }),
		Leases:        leases,
	})
	leasesLogged()
	if *showPidfds {
		fmt.Fprintf(os.Stderr, "pidfds=%d\n", pidfds())
	}
	return status
}

// pidfds counts the pidfds this process holds open.
func pidfds() int {
	fds, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); l == "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// groupChild behaviours:
//
//	report              print each signal to stderr; exit 0 on TERM, INT or QUIT
//	slowstop D          on TERM take D to clean up, then exit 0
//	prompt              write a prompt with no newline to stderr, wait for TERM
//	ignore              ignore TERM
//	crash N             exit N at once
//	lines N TAG         write N numbered lines, say so on stderr, wait for TERM
//	burst N TAG         on TERM write N numbered lines and a partial one, exit 0
//	started FILE N      append a line to FILE, exit N
func groupChild(args []string) int {
	if len(args) == 0 {
		return 2
	}
	ready := func() { fmt.Fprintln(os.Stderr, "ready", args[0]) }
	term := make(chan os.Signal, 16)
	switch args[0] {
	case "report":
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTTIN)
		ready()
		for s := range term {
			fmt.Fprintln(os.Stderr, "got", unix.SignalName(s.(syscall.Signal)))
			switch s {
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
				return 0
			}
		}
	case "slowstop":
		d, _ := time.ParseDuration(args[1])
		signal.Notify(term, syscall.SIGTERM)
		ready()
		<-term
		fmt.Println("term at", time.Now().UnixNano())
		time.Sleep(d) // the cleanup a real program would do
		fmt.Println("clean stop at", time.Now().UnixNano())
		return 0
	case "prompt":
		signal.Notify(term, syscall.SIGTERM)
		fmt.Fprint(os.Stderr, "Password: ")
		<-term
		return 0
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		ready()
		select {}
	case "crash":
		var n int
		fmt.Sscan(args[1], &n)
		fmt.Println("crashing with", n)
		return n
	case "lines":
		var n int
		fmt.Sscan(args[1], &n)
		signal.Notify(term, syscall.SIGTERM)
		w := newLineBuffer(os.Stdout)
		for i := range n {
			writeLine(w, args[2], i)
		}
		w.Flush()
		fmt.Fprintln(os.Stderr, "wrote", n, args[2])
		<-term
		return 0
	case "burst":
		var n int
		fmt.Sscan(args[1], &n)
		signal.Notify(term, syscall.SIGTERM)
		ready()
		<-term
		w := newLineBuffer(os.Stdout)
		for i := range n {
			writeLine(w, args[2], i)
		}
		w.Flush()
		os.Stdout.WriteString("no newline at the end")
		return 0
	case "started":
		f, err := os.OpenFile(args[1], os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return 1
		}
		fmt.Fprintln(f, os.Getpid())
		f.Close()
		var n int
		fmt.Sscan(args[2], &n)
		return n
	}
	return 2
}

// lineBuffer batches whole lines into writes of about 4 KiB, as C stdio
// and Python do, but only ever cuts at a newline. A write that ends
// mid-line could be followed by a pause (a child starved of CPU) longer
// than the idle delay, and the line would be cut, rightly: TestOutputPipe
// covers pauses mid-line.
type lineBuffer struct {
	w   io.Writer
	buf []byte
}

func newLineBuffer(w io.Writer) *lineBuffer { return &lineBuffer{w: w} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) >= 4096 && b.buf[len(b.buf)-1] == '\n' {
		b.Flush()
	}
	return len(p), nil
}

func (b *lineBuffer) Flush() {
	b.w.Write(b.buf)
	b.buf = b.buf[:0]
}

// writeLine writes line i of tag: its number and a payload whose length
// and content vary with i, so that pipe reads end at varied places.
func writeLine(w io.Writer, tag string, i int) {
	fmt.Fprintf(w, "%s %d %s\n", tag, i, payload(i))
}

func payload(i int) string {
	return strings.Repeat(string(rune('a'+i%26)), (i*7919)%97)
}

// childCmd is the Procfile command that runs groupChild with args.
func childCmd(args ...string) string {
	return os.Args[0] + " -test.run=^TestGroupChild$ -- " + strings.Join(args, " ")
}

// patience is how long the tests wait for an event before they fail: long,
// because a loaded CI machine is slow, and no test passes by waiting.
const patience = 90 * time.Second

// groupRun is a TestGroupHelper running as PID 1 of its own PID namespace.
type groupRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout string // file holding the helper's stdout
	lines  chan string
	done   chan struct{}
	began  time.Time

	mu     sync.Mutex
	stderr strings.Builder
}

// startGroup writes procfile and runs the helper on it with flags.
func startGroup(t *testing.T, procfile string, flags ...string) *groupRun {
	t.Helper()
	return startGroupEnv(t, nil, procfile, flags...)
}

// startGroupEnv is startGroup with env added to the environment.
func startGroupEnv(t *testing.T, env []string, procfile string, flags ...string) *groupRun {
	t.Helper()
	dir := t.TempDir()
	pf := dir + "/Procfile"
	if err := os.WriteFile(pf, []byte(procfile), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"unshare", "--pid", "--fork", "--mount-proc",
		os.Args[0], "-test.run=^TestGroupHelper$", "--", "-procfile", pf}, flags...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// A -race binary sleeps a second at exit by default: that would be
	// counted in every stop.
	cmd.Env = append(append(os.Environ(), helperEnv, "GORACE=atexit_sleep_ms=0"), env...)
	stdout, err := os.Create(dir + "/stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = stdout, wr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	g := &groupRun{t: t, cmd: cmd, stdout: stdout.Name(), lines: make(chan string, 1<<16), done: make(chan struct{}), began: time.Now()}
	go func() {
		defer close(g.lines)
		sc := bufio.NewScanner(rd)
		for sc.Scan() {
			g.mu.Lock()
			g.stderr.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
			select {
			case g.lines <- sc.Text():
			default: // nobody is looking for it; it stays in stderr
			}
		}
		rd.Close()
	}()
	go func() {
		_ = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
			return
		default:
		}
		// Killing the namespace's PID 1 kills everything in it.
		for _, d := range mustDescendants(cmd.Process.Pid) {
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-g.done
	})
	return g
}

func (g *groupRun) errOutput() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// expect reads stderr lines until one matches re, and returns its submatches.
func (g *groupRun) expect(re string) []string {
	g.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(patience)
	for {
		select {
		case line, ok := <-g.lines:
			if !ok {
				g.t.Fatalf("stderr ended before a line matching %q:\n%s", re, g.errOutput())
			}
			if m := rx.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			g.t.Fatalf("no stderr line matching %q:\n%s", re, g.errOutput())
		}
	}
}

// expectAll reads stderr lines until each of res has matched one, in any
// order.
func (g *groupRun) expectAll(res ...string) {
	g.t.Helper()
	left := map[*regexp.Regexp]bool{}
	for _, re := range res {
		left[regexp.MustCompile(re)] = true
	}
	deadline := time.After(patience)
	for len(left) > 0 {
		select {
		case line, ok := <-g.lines:
			if !ok {
				g.t.Fatalf("stderr ended before lines matching %q:\n%s", res, g.errOutput())
			}
			for rx := range left {
				if rx.MatchString(line) {
					delete(left, rx)
				}
			}
		case <-deadline:
			g.t.Fatalf("not all of %q matched:\n%s", res, g.errOutput())
		}
	}
}

// signal sends sig to the helper, PID 1 of the namespace.
func (g *groupRun) signal(sig syscall.Signal) {
	g.t.Helper()
	if err := syscall.Kill(g.pid1(), sig); err != nil {
		g.t.Fatal(err)
	}
}

// pid1 is the pid, seen from here, of the helper: the child of unshare.
func (g *groupRun) pid1() int {
	g.t.Helper()
	for _, d := range mustDescendants(g.cmd.Process.Pid) {
		if d.ppid == g.cmd.Process.Pid {
			return d.pid
		}
	}
	g.t.Fatal("no PID 1 below unshare")
	return 0
}

// child returns the pid, seen from here, of the helper's child whose
// command line contains all of words.
func (g *groupRun) child(words ...string) int {
	g.t.Helper()
	pid := proctest.ChildWith(g.pid1(), words...)
	if pid == 0 {
		g.t.Fatalf("no child of the helper runs %q", words)
	}
	return pid
}

// wait returns the helper's exit status and when it exited.
func (g *groupRun) wait() (int, time.Time) {
	g.t.Helper()
	select {
	case <-g.done:
	case <-time.After(2 * patience):
		g.t.Fatalf("helper still running:\n%s", g.errOutput())
	}
	at := time.Now()
	for range g.lines {
	}
	return g.cmd.ProcessState.ExitCode(), at
}

// lastLine is the helper's last line on stderr.
func (g *groupRun) lastLine() string {
	lines := strings.Split(strings.TrimSpace(g.errOutput()), "\n")
	return lines[len(lines)-1]
}

// output is the helper's stdout.
func (g *groupRun) output() string {
	b, err := os.ReadFile(g.stdout)
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b)
}

// helperLeases feeds the group the leases written to the FIFO at path, and
// logs "lease done" when the group closes a grant's Done. The function it
// returns, called once the group has returned, waits until each Done the
// group closed has been logged: the helper must not exit before.
func helperLeases(path string, log *slog.Logger) (<-chan Lease, func()) {
	if path == "" {
		return nil, func() {}
	}
	leases := make(chan Lease)
	f, err := os.OpenFile(path, os.O_RDWR, 0) // read-write: no end of file when the writer closes
	if err != nil {
		log.Error("leases", "err", err)
		return nil, func() {}
	}
	type grant struct{ done, logged chan struct{} }
	var mu sync.Mutex
	var grants []grant
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			verb, typ, _ := strings.Cut(sc.Text(), " ")
			l := Lease{Type: typ, Held: verb == "grant"}
			if l.Held {
				g := grant{done: make(chan struct{}), logged: make(chan struct{})}
				l.Done = g.done
				mu.Lock()
				grants = append(grants, g)
				mu.Unlock()
				go func() {
					<-g.done
					log.Info("lease done", "type", typ)
					close(g.logged)
				}()
			}
			leases <- l
		}
	}()
	return leases, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range grants {
			select {
			case <-g.done:
				<-g.logged
			default:
			}
		}
	}
}
