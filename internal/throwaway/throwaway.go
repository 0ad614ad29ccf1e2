// Package throwaway starts real servers (PostgreSQL, Redis, RabbitMQ) from
// the binaries installed on the machine, for tests. Each server lives in the
// test's temporary directory, listens on a free loopback port, can be
// started late, stopped and restarted, and is stopped by process id in
// t.Cleanup even when the test fails. Nothing is found or killed by name.
// It also hands out resources on the machine's own servers (a fresh
// database, a queue) that are removed when the test ends.
package throwaway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("throwaway: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one running server process, in its own process group so that the
// helpers it forks (postgres backends, erl_child_setup) can be signalled
// together by group id.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // valid after done
	logPath string
}

// procSpec describes how to start a process.
type procSpec struct {
	name    string
	path    string
	args    []string
	env     []string // nil = inherit
	dir     string
	logPath string
	cred    *syscall.Credential
}

func startProc(s procSpec) (*proc, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.path, s.args...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL, // the test binary died: take the server with it
		Credential: s.cred,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	p := &proc{name: s.name, cmd: cmd, done: make(chan struct{}), logPath: s.logPath}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process, waits up to grace for it to exit, then
// kills its whole process group. It always leaves no member of the group
// behind (helpers that outlive their parent included).
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	var err error
	if !p.exited() {
		_ = syscall.Kill(p.pid(), sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			err = fmt.Errorf("%s (pid %d) ignored %v for %s; killed", p.name, p.pid(), sig, grace)
		}
	}
	killGroup(p.pid())
	<-p.done
	return err
}

// killGroup SIGKILLs process group pgid until it is empty (bounded).
func killGroup(pgid int) {
	for range 100 {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether any process of group pgid still exists.
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// tail returns the last n bytes of a file, for failure reports.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// waitTCP polls addr until it accepts a connection, p exits, or timeout.
func waitTCP(addr string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v", p.name, addr, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runAs describes the account a server must run as. Postgres refuses to
// run as root; when the test runs as root it drops to the "postgres" user.
type runAs struct {
	cred     *syscall.Credential
	uid, gid int
}

func accountFor(name string) (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return runAs{}, fmt.Errorf("running as root, and no %q user to run as: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
}

// chown gives path to the account (no-op when not switching users).
func (r runAs) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Chown(path, r.uid, r.gid)
}

// tempDir returns t.TempDir(), made traversable by another account: the
// testing package creates its parent with mode 0700.
func tempDir(t testing.TB, r runAs) string {
	t.Helper()
	dir := t.TempDir()
	if r.cred != nil {
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatalf("throwaway: %v", err)
			}
		}
	}
	return dir
}

// server holds what all throwaway servers share: the running process, its
// log, and its cleanup.
type server struct {
	t       testing.TB
	name    string // for messages: "throwaway <name>: ..."
	mu      sync.Mutex
	p       *proc
	logPath string
	pgids   []int // every process group ever started, for the final check
}

// init records the test and the server log, and registers the cleanup: it
// calls stop, kills any process group left over, and prints the server log
// when the test failed.
func (s *server) init(t testing.TB, name, logPath string, stop func()) {
	s.t, s.name, s.logPath = t, name, logPath
	t.Cleanup(func() {
		stop()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, g := range s.pgids {
			killGroup(g)
		}
		if t.Failed() {
			t.Logf("throwaway: last lines of %s:\n%s", logPath, tail(logPath, 3000))
		}
	})
}

func (s *server) running() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil && !s.p.exited() {
		return s.p
	}
	return nil
}

func (s *server) setProc(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p = p
	s.pgids = append(s.pgids, p.pid())
}

// start launches the server process and returns at once. Starting a
// running server fails the test.
func (s *server) start(spec procSpec) {
	s.t.Helper()
	if s.running() != nil {
		s.t.Fatalf("throwaway %s: already running", s.name)
	}
	p, err := startProc(spec)
	if err != nil {
		s.t.Fatalf("throwaway %s: %v", s.name, err)
	}
	s.setProc(p)
}

// waitReady waits until addr accepts connections and then, if ready is not
// nil, until it reports true; it fails the test after timeout with ready's
// last words.
func (s *server) waitReady(addr string, timeout time.Duration, ready func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	if err := waitTCP(addr, s.running(), timeout); err != nil {
		s.t.Fatalf("throwaway %s: %v", s.name, err)
	}
	for ready != nil {
		ok, last := ready()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("throwaway %s: not ready after %s: %s", s.name, timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends sig to the running process, if any, and waits for it to exit;
// after grace its process group is killed.
func (s *server) stop(sig syscall.Signal, grace time.Duration) {
	if p := s.running(); p != nil {
		if err := p.stop(sig, grace); err != nil {
			s.t.Logf("throwaway %s: %v", s.name, err)
		}
	}
}
