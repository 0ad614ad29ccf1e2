package integration

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
)

// nsEntry is the binary running as PID 1 of a fresh PID namespace
// (unshare --pid --fork --mount-proc), as in a container.
type nsEntry struct {
	t    *testing.T
	cmd  *exec.Cmd
	pid1 int // entry's pid in our namespace
	out  *proctest.Buffer
	done chan struct{}
	err  error
}

// startPID1 starts entry as PID 1 with env and args and returns once it runs.
func startPID1(t *testing.T, env []string, args ...string) *nsEntry {
	t.Helper()
	return startPID1Via(t, nil, env, args...)
}

// startPID1Via is startPID1 with unshare run by prefix, a command that execs its
// arguments (ip netns exec NAME, to start entry in a network namespace).
func startPID1Via(t *testing.T, prefix []string, env []string, args ...string) *nsEntry {
	t.Helper()
	argv := append(append(prefix[:len(prefix):len(prefix)], "unshare", "--pid", "--fork", "--mount-proc", "--kill-child", entryBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = cleanEnv(env...)
	n := &nsEntry{t: t, cmd: cmd, out: &proctest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			cmd.Process.Kill() // --kill-child takes the namespace down with unshare
			<-n.done
		}
	})
	// unshare forks the namespace's init; wait until it has exec'd entry.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if kids := proctest.Children(cmd.Process.Pid); len(kids) > 0 {
			pid := kids[0]
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && exe == entryBin {
				n.pid1 = pid
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("entry exited before it could be observed: %v\n%s", n.err, n.out)
		case <-time.After(2 * time.Millisecond):
		}
	}
	t.Fatalf("entry did not start as PID 1\n%s", n.out)
	return nil
}

func (n *nsEntry) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := syscall.Kill(n.pid1, sig); err != nil {
		n.t.Fatalf("kill %d: %v", n.pid1, err)
	}
}

// wait returns entry's exit status; unshare reports its child's status as its own.
func (n *nsEntry) wait(timeout time.Duration) int {
	n.t.Helper()
	select {
	case <-n.done:
	case <-time.After(timeout):
		n.t.Fatalf("entry still running after %s\n%s", timeout, n.out)
	}
	var ee *exec.ExitError
	if errors.As(n.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if n.err != nil {
		n.t.Fatal(n.err)
	}
	return 0
}

// waitOutput waits until entry's output contains s.
func (n *nsEntry) waitOutput(s string, timeout time.Duration) {
	n.t.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(n.out.String(), s) {
		select {
		case <-deadline:
			n.t.Fatalf("no %q in entry's output after %s\n%s", s, timeout, n.out)
		case <-n.done:
			if !strings.Contains(n.out.String(), s) {
				n.t.Fatalf("entry exited without printing %q\n%s", s, n.out)
			}
		case <-time.After(5 * time.Millisecond):
		}
	}
}
