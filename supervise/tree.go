package supervise

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// proc is one process seen in /proc.
type proc struct{ pid, ppid int }

// descendants returns every process below root, found by following PPid
// links in /proc. The answer is a snapshot: processes may exit or fork
// while it is taken.
func descendants(root int) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := make(map[int][]int)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		ppid := queue[0]
		queue = queue[1:]
		for _, pid := range children[ppid] {
			out = append(out, proc{pid, ppid})
			queue = append(queue, pid)
		}
	}
	return out, nil
}

// parentOf reads the PPid of pid from /proc/<pid>/stat.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name in parentheses may hold spaces and parentheses; the
	// fields after the last ')' are "state ppid ...".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil
}

// signalDescendants sends sig to every process below us and returns how
// many there were. Even as PID 1 it does not use kill(-1): processes that
// docker exec or a Kubernetes exec probe put in the namespace are not ours
// to stop. Each process is signalled through a pidfd, after checking that
// the pid still names a process whose parent is the one we saw, so a
// recycled pid is not hit.
func signalDescendants(sig unix.Signal) (int, error) {
	self := os.Getpid()
	procs, err := descendants(self)
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			continue // gone already
		}
		// Its parent may have died since and handed it to us.
		if ppid, ok := parentOf(p.pid); ok && (ppid == p.ppid || ppid == self) {
			_ = unix.PidfdSendSignal(fd, sig, nil, 0)
		}
		unix.Close(fd)
	}
	return len(procs), nil
}
