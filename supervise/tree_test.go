package supervise

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDescendants(t *testing.T) {
	t.Parallel()
	// sh starts a sleep and reports its pid: a child and a grandchild of
	// ours, both killed by pid at the end whatever happens.
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var grandchild int
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(out, b, 2)
		line <- string(b[:n])
	}()
	select {
	case s := <-line:
		grandchild, err = strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("sh printed %q, want a pid", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sh did not report its child")
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(grandchild); err == nil {
			_ = p.Kill()
		}
	})

	procs, err := descendants(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for _, p := range procs {
		got[p.pid] = p.ppid
	}
	if ppid, ok := got[cmd.Process.Pid]; !ok || ppid != os.Getpid() {
		t.Errorf("child %d: found=%v ppid=%d, want found with ppid %d", cmd.Process.Pid, ok, ppid, os.Getpid())
	}
	if ppid, ok := got[grandchild]; !ok || ppid != cmd.Process.Pid {
		t.Errorf("grandchild %d: found=%v ppid=%d, want found with ppid %d", grandchild, ok, ppid, cmd.Process.Pid)
	}
}

func TestReadStatOddName(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses must not shift the fields.
	dir := t.TempDir()
	odd := dir + "/a) (b"
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	st, ok := readStat(cmd.Process.Pid)
	if !ok || st.ppid != os.Getpid() || st.pgrp != syscall.Getpgrp() || st.start == 0 {
		t.Errorf("readStat(%d) = %+v, %v; want ppid %d, pgrp %d, a start time", cmd.Process.Pid, st, ok, os.Getpid(), syscall.Getpgrp())
	}
}
