package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nsRun is one run of "unshare --pid --fork ... INIT ARGS": the unshare process started
// here, and the lines its namespace writes.
type nsRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // the init's stdin, passed on to the main process
	stdout chan string    // lines, dropped when nobody reads them
	stderr chan string
	exited chan struct{} // closed once cmd.Wait returned

	mu   sync.Mutex
	tail []string // last lines of stderr, for error messages
}

// startNS starts argv with env added to this process's environment.
func startNS(argv, env []string) (*nsRun, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command given after --")
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	r := &nsRun{
		cmd:    exec.Command(argv[0], argv[1:]...),
		stdout: make(chan string, 256),
		stderr: make(chan string, 256),
		exited: make(chan struct{}),
	}
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = outW, errW
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		outR.Close()
		errR.Close()
		outW.Close()
		errW.Close()
		return nil, err
	}
	err = r.cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	go r.read(outR, r.stdout, false)
	go r.read(errR, r.stderr, true)
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	return r, nil
}

func (r *nsRun) read(f *os.File, lines chan<- string, keep bool) {
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if keep {
			r.mu.Lock()
			r.tail = append(r.tail, s.Text())
			if len(r.tail) > 20 {
				r.tail = r.tail[1:]
			}
			r.mu.Unlock()
		}
		select {
		case lines <- s.Text():
		default:
		}
	}
}

// output is the end of what the run wrote to stderr, to explain a failure.
func (r *nsRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tail) == 0 {
		return ""
	}
	return "\n\t" + strings.Join(r.tail, "\n\t")
}

// pid1 returns the PID 1 of the namespace as seen from here: the child unshare forked.
func (r *nsRun) pid1(timeout time.Duration) (int, error) {
	pid := r.cmd.Process.Pid
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return 0, fmt.Errorf("children of unshare: %w", err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("unshare forked no child within %s", timeout)
		}
		select {
		case <-r.exited:
			return 0, errors.New("unshare exited before its child could be found")
		case <-time.After(time.Millisecond):
		}
	}
}

// status waits for unshare to exit and returns its exit status (128+N when killed by N).
func (r *nsRun) status(timeout time.Duration) (int, error) {
	select {
	case <-r.exited:
	case <-time.After(timeout):
		r.abort()
		<-r.exited
		return 0, fmt.Errorf("still running %s after the init exited", timeout)
	}
	ws := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// abort kills the namespace (SIGKILL to its PID 1 takes every process in it) and unshare.
func (r *nsRun) abort() {
	if pid, err := r.pid1(0); err == nil {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	_ = r.cmd.Process.Kill()
}

// waitLine returns once a line for which match is true arrives on lines.
func (r *nsRun) waitLine(lines <-chan string, match func(string) bool, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-lines:
			if match(l) {
				return nil
			}
		case <-r.exited:
			return errors.New("exited before it was ready")
		case <-deadline:
			return fmt.Errorf("not ready within %s", timeout)
		}
	}
}

// stopLatency sends SIGTERM to pid and returns the time from kill(2) to its exit, that is
// until its pidfd is readable: the moment its parent's wait returns it (for a namespace's
// PID 1, after the kernel has killed and reaped whatever was left in the namespace).
func stopLatency(pid int, timeout time.Duration) (time.Duration, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	start := time.Now()
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return 0, fmt.Errorf("kill %d: %w", pid, err)
	}
	if err := pollIn(fd, start.Add(timeout)); err != nil {
		return 0, fmt.Errorf("pid %d did not exit after SIGTERM: %w", pid, err)
	}
	return time.Since(start), nil
}

func pollIn(fd int, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("timed out")
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// tree returns the parent of every process in /proc.
func tree() map[int][]int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/status"); err == nil {
			ppid := int(field(b, "PPid:"))
			children[ppid] = append(children[ppid], p)
		}
	}
	return children
}

// countComm counts the descendants of pid whose command name is comm.
func countComm(pid int, comm string) int {
	children := tree()
	n := 0
	var walk func(p int)
	walk = func(p int) {
		for _, c := range children[p] {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); err == nil && strings.TrimSpace(string(b)) == comm {
				n++
			}
			walk(c)
		}
	}
	walk(pid)
	return n
}

// waitComm returns once pid has at least n descendants called comm (they have exec'd).
func (r *nsRun) waitComm(pid int, comm string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for countComm(pid, comm) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("fewer than %d processes %q after %s", n, comm, timeout)
		}
		select {
		case <-r.exited:
			return fmt.Errorf("exited before %d processes %q ran", n, comm)
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// describe lists pid and its descendants with their state and signal masks, to show where
// a run got stuck.
func describe(pid int) string {
	children := tree()
	var out strings.Builder
	var walk func(p, depth int)
	walk = func(p, depth int) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"Name:", "State:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:"} {
				if strings.HasPrefix(l, k) {
					keep = append(keep, strings.Join(strings.Fields(l), " "))
				}
			}
		}
		fmt.Fprintf(&out, "\n\t%s%d %s", strings.Repeat("  ", depth), p, strings.Join(keep, " "))
		for _, c := range children[p] {
			walk(c, depth+1)
		}
	}
	walk(pid, 0)
	return out.String()
}
