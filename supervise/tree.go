package supervise

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// procStat is what entry reads of a process in /proc/PID/stat.
type procStat struct {
	pid, ppid, pgrp, session int
	start                    uint64 // clock ticks after boot
	dead                     bool   // a zombie: gone, waiting to be reaped
}

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name in parentheses may hold spaces and parentheses; the
	// fields after the last ')' are "state ppid pgrp session ...", and the
	// start time is the 22nd field of the line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return procStat{}, false
	}
	st := procStat{pid: pid, dead: f[0][0] == 'Z' || f[0][0] == 'X'}
	var errs [4]error
	st.ppid, errs[0] = strconv.Atoi(string(f[1]))
	st.pgrp, errs[1] = strconv.Atoi(string(f[2]))
	st.session, errs[2] = strconv.Atoi(string(f[3]))
	st.start, errs[3] = strconv.ParseUint(string(f[19]), 10, 64)
	for _, err := range errs {
		if err != nil {
			return procStat{}, false
		}
	}
	return st, true
}

// allProcs reads every process in /proc. The answer is a snapshot:
// processes may exit or fork while it is taken.
func allProcs() ([]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// below returns the live processes of procs that are in roots or below
// one of them, following PPid links.
func below(procs []procStat, roots []procStat) []procStat {
	children := make(map[int][]procStat)
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	seen := make(map[int]bool)
	var out []procStat
	queue := roots
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p.pid] {
			continue
		}
		seen[p.pid] = true
		if !p.dead {
			out = append(out, p)
		}
		queue = append(queue, children[p.pid]...)
	}
	return out
}

// descendants returns every live process below root.
func descendants(root int) ([]procStat, error) {
	procs, err := allProcs()
	if err != nil {
		return nil, err
	}
	return below(procs, children(procs, root)), nil
}

func children(procs []procStat, ppid int) []procStat {
	var out []procStat
	for _, p := range procs {
		if p.ppid == ppid {
			out = append(out, p)
		}
	}
	return out
}

// leftovers returns what the process leader, started in a session of its
// own, left behind: the live processes of its session or of its process
// group (both bear its pid), and everything below them, that started no
// later than started (clock ticks after boot; the leader's exit). The ids
// of a session and a group stay taken while a member lives, so they name
// the leader's and no other; the start time keeps out a new process that
// reuses the number once they are empty.
func leftovers(leader int, before uint64) ([]procStat, error) {
	procs, err := allProcs()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var roots []procStat
	for _, p := range procs {
		if p.pid != self && (p.session == leader || p.pgrp == leader) && p.start <= before {
			roots = append(roots, p)
		}
	}
	return below(procs, roots), nil
}

// bootTicks is the time since boot in the clock ticks of /proc/PID/stat
// (USER_HZ, 100 on Linux), rounded up.
func bootTicks() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*100 + uint64(ts.Nsec)/1e7 + 1
}

// signalProcs sends sig to each of procs through a pidfd, after checking
// that the pid still names the process seen (same start time), so a
// recycled pid is not hit. It returns the pidfds of those signalled, for
// the caller to wait on and close.
func signalProcs(procs []procStat, sig unix.Signal) []int {
	var fds []int
	for _, p := range procs {
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			continue // gone already
		}
		if st, ok := readStat(p.pid); !ok || st.start != p.start {
			unix.Close(fd)
			continue
		}
		_ = unix.PidfdSendSignal(fd, sig, nil, 0)
		fds = append(fds, fd)
	}
	return fds
}

// signalDescendants sends sig to every process below us and returns how
// many there were. Even as PID 1 it does not use kill(-1): processes that
// docker exec or a Kubernetes exec probe put in the namespace are not ours
// to stop.
func signalDescendants(sig unix.Signal) (int, error) {
	procs, err := descendants(os.Getpid())
	if err != nil {
		return 0, err
	}
	for _, fd := range signalProcs(procs, sig) {
		unix.Close(fd)
	}
	return len(procs), nil
}
