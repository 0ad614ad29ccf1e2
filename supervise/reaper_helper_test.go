package supervise

// The test binary doubles as the programs the tests run, as os/exec's own
// tests do: with SUPERVISE_HELPER=1 in the environment, TestPID1Helper is an
// entry-like PID 1 (wired exactly as cmd/entry wires this package) and
// TestPID1Child is a child with a few canned behaviours. Arguments follow
// the first "--".

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "SUPERVISE_HELPER=1"

func helperArgs() ([]string, bool) {
	if os.Getenv("SUPERVISE_HELPER") != "1" {
		return nil, false
	}
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:], true
		}
	}
	return nil, true
}

func TestPID1Helper(t *testing.T) {
	if args, ok := helperArgs(); ok {
		os.Exit(pid1Main(args))
	}
}

func TestPID1Child(t *testing.T) {
	if args, ok := helperArgs(); ok {
		os.Exit(childMain(args))
	}
}

// pid1Main is what cmd/entry does around Run, plus knobs for the tests.
func pid1Main(args []string) int {
	sigs := make(chan os.Signal, 2048)
	if err := Notify(sigs); err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		return 1
	}
	chld := make(chan os.Signal, 2048)
	signal.Notify(chld, syscall.SIGCHLD)

	fs := flag.NewFlagSet("pid1", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "stop timeout")
	busy := fs.Bool("busy", false, "keep the Go runtime busy until it has sent itself SIGURG")
	cancelOnEOF := fs.Bool("cancel-on-eof", false, "cancel Run's context when stdin closes")
	stress := fs.Int("stress", 0, "start this many children through the reaper instead of Run")
	debug := fs.Bool("debug", false, "debug logging")
	release := fs.String("release", "", "a shell command run through Run first, as a release step")
	delay := fs.Duration("delay", 0, "shutdown delay")
	health := fs.Bool("health", false, "serve health on a free port")
	if err := fs.Parse(args); err != nil {
		return 64
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Getpid() != 1 {
		if err := SetSubreaper(); err != nil {
			log.Error("subreaper", "err", err)
			return 1
		}
		log.Info("not PID 1: registered as child subreaper")
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
		fmt.Fprintln(os.Stderr, "health", ln.Addr())
	}
	fmt.Fprintln(os.Stderr, "pid1 up")

	if *stress > 0 {
		return stressMain(ctx, r, *stress)
	}
	if *busy {
		urgs := make(chan os.Signal, 64)
		signal.Notify(urgs, syscall.SIGURG)
		go spin(urgs)
	}
	policy := StopPolicy{Signal: syscall.SIGTERM, Timeout: *timeout}
	if *release != "" {
		cmd := exec.Command("/bin/sh", "-c", *release)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		res, err := Run(ctx, r, cmd, sigs, RunOptions{Stop: policy, Log: log})
		if err != nil || res.Exit.Status() != 0 {
			log.Error("release failed", "exit", res.Exit.String(), "err", err)
			return 1
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if *cancelOnEOF {
		cmd.Stdin = nil
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	h.SetPhase("running")
	res, err := Run(runCtx, r, cmd, sigs, RunOptions{Stop: policy, Log: log, ShutdownDelay: *delay, Health: h})
	var se *StartError
	if errors.As(err, &se) {
		log.Error("cannot start", "err", err)
		return se.Status()
	}
	if err != nil {
		log.Error("run", "err", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "result status=%d stop=%v orphans=%d zombies=%d pidfds=%d\n",
		res.Exit.Status(), res.StopSignal, r.orphansReaped(), zombies(), pidfds())
	return res.Exit.Status()
}

// spin keeps every P busy in loops the scheduler can only preempt with
// SIGURG, until a few of those have been seen.
func spin(urgs <-chan os.Signal) {
	var stop atomic.Bool
	for range runtime.GOMAXPROCS(0) + 1 {
		go func() {
			for x := 0; !stop.Load(); x++ {
				if x%(1<<20) == 0 {
					_ = make([]byte, 1<<10)
				}
			}
		}()
	}
	for range 5 {
		<-urgs
	}
	stop.Store(true)
	fmt.Fprintln(os.Stderr, "pid1 has sent itself SIGURG")
}

// stressMain starts n shells through the reaper, 8 at a time; each leaves
// five orphans behind and exits with its own status.
func stressMain(ctx context.Context, r *Reaper, n int) int {
	var lost atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				want := i % 256
				cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("(exit 1)& (exit 1)& (exit 1)& (exit 1)& (exit 1)& exit %d", want))
				exits, err := r.Start(cmd)
				if err != nil {
					fmt.Fprintln(os.Stderr, "start:", err)
					lost.Add(1)
					continue
				}
				if got := r.Wait(cmd, exits); got.Status() != want || got.Pid != cmd.Process.Pid {
					fmt.Fprintf(os.Stderr, "child %d: got %v, want status %d\n", i, got, want)
					lost.Add(1)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.waitEmpty(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "empty:", err)
	}
	fmt.Fprintf(os.Stderr, "stress children=%d lost=%d orphans=%d zombies=%d\n", n, lost.Load(), r.orphansReaped(), zombies())
	return 0
}

// zombies counts processes in state Z in our /proc.
func zombies() int {
	n := 0
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			n++
		}
	}
	return n
}

func childMain(args []string) int {
	if len(args) == 0 {
		return 2
	}
	switch args[0] {
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "cleanup":
		// Grandchild: says it is ready by closing fd 3, then needs a
		// second to clean up on SIGTERM.
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		os.NewFile(3, "ready").Close()
		<-term
		fmt.Println("cleanup start")
		time.Sleep(time.Second)
		fmt.Println("cleanup done")
		return 0
	case "leave-grandchild":
		// Starts "cleanup" and exits 3 once it is ready.
		rd, wr, err := os.Pipe()
		if err != nil {
			return 1
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestPID1Child$", "--", "cleanup")
		cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = os.Stdout, os.Stderr, []*os.File{wr}
		if err := cmd.Start(); err != nil {
			return 1
		}
		wr.Close()
		_, _ = io.Copy(io.Discard, rd)
		fmt.Println("ready")
		return 3
	case "orphans":
		// Leaves n processes behind, not waited for.
		n, _ := strconv.Atoi(args[1])
		for range n {
			if _, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{}); err != nil {
				return 1
			}
		}
		fmt.Println("spawned", n)
		return 0
	}
	return 2
}

// reportSignals is a child that reports every signal it receives and who
// sent it. It is Python so that it has no SIGURG of its own. On SIGTERM it
// also reports what is still pending, then exits 0.
const reportSignals = `
import os, signal, sys
def say(*words):
    # One write per line: PID 1 writes to the same pipe.
    os.write(1, (" ".join(map(str, words)) + "\n").encode())
sigs = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
say("ready")
while True:
    info = signal.sigwaitinfo(sigs)
    say("got", signal.Signals(info.si_signo).name, "from", info.si_pid)
    if info.si_signo == signal.SIGTERM:
        for s in sorted(signal.sigpending()):
            say("pending", signal.Signals(s).name)
        sys.exit(0)
`

// child returns the argv that runs childMain with args.
func child(args ...string) []string {
	return append([]string{os.Args[0], "-test.run=^TestPID1Child$", "--"}, args...)
}

// pid1Argv returns the argv that runs pid1Main with flags, then argv as
// its command.
func pid1Argv(flags []string, argv ...string) []string {
	a := append([]string{os.Args[0], "-test.run=^TestPID1Helper$", "--"}, flags...)
	return append(append(a, "--"), argv...)
}

// namespaced prefixes argv so that it runs as PID 1 of a new PID namespace.
func namespaced(argv ...string) []string {
	return append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, argv...)
}

// proc is a process started by a test, with its output read line by line.
type process struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}

	mu  sync.Mutex
	out strings.Builder
}

// start runs argv with stdout and stderr merged, and makes sure it and
// everything below it are gone when the test ends.
func start(t *testing.T, argv ...string) *process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	// A race-enabled binary otherwise sleeps a second before exiting 0.
	cmd.Env = append(os.Environ(), helperEnv, "GORACE=atexit_sleep_ms=0")
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = wr, wr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	p := &process{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 100000), done: make(chan struct{})}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(rd)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			p.lines <- line
		}
		rd.Close()
	}()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		// Killing the namespace's PID 1 kills the whole namespace.
		for _, d := range mustDescendants(cmd.Process.Pid) {
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s still running after SIGKILL", argv[0])
		}
	})
	return p
}

func mustDescendants(pid int) []procStat {
	ps, _ := descendants(pid)
	return ps
}

// output is everything read so far.
func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// expect reads lines until one matches re and returns its submatches.
func (p *process) expect(re string, within time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(within)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("output ended before a line matching %q; output:\n%s", re, p.output())
			}
			if m := rx.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			p.t.Fatalf("no line matching %q within %v; output:\n%s", re, within, p.output())
		}
	}
}

// expectAll reads lines until each of res has matched one, in any order.
func (p *process) expectAll(within time.Duration, res ...string) {
	p.t.Helper()
	deadline := time.After(within)
	left := make([]*regexp.Regexp, len(res))
	for i, re := range res {
		left[i] = regexp.MustCompile(re)
	}
	for len(left) > 0 {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("output ended before lines matching %q; output:\n%s", left, p.output())
			}
			for i, rx := range left {
				if rx.MatchString(line) {
					left = append(left[:i], left[i+1:]...)
					break
				}
			}
		case <-deadline:
			p.t.Fatalf("no lines matching %q within %v; output:\n%s", left, within, p.output())
		}
	}
}

// wait returns the exit status of the process.
func (p *process) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("still running after %v; output:\n%s", within, p.output())
	}
	// Let the reader reach the end of the output.
	for range p.lines {
	}
	return p.cmd.ProcessState.ExitCode()
}

// pid1 returns the pid, as seen from here, of the namespace's PID 1: the
// child of unshare. Call it after the helper has said "pid1 up".
func (p *process) pid1() int {
	p.t.Helper()
	for _, d := range mustDescendants(p.cmd.Process.Pid) {
		if d.ppid == p.cmd.Process.Pid {
			return d.pid
		}
	}
	p.t.Fatalf("no PID 1 below unshare %d", p.cmd.Process.Pid)
	return 0
}

// eventually polls cond until it holds or within has passed.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(within)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}
