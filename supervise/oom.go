package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// OOMWatch reads the kernel's OOM-kill count and the memory limit of the
// memory cgroup entry runs in, so that a process killed by SIGKILL that
// entry did not send can be said to be OOM-killed rather than "killed by
// SIGKILL". cgroup v2 counts kills in memory.events (oom_kill, including
// the cgroups below), v1 in memory.oom_control (oom_kill). A nil *OOMWatch
// knows nothing.
type OOMWatch struct {
	dir  string // the cgroup's directory
	root string // the controller's mount point: limits are looked up to here
	v2   bool
}

// OOMMark is the OOM-kill count at one moment.
type OOMMark struct {
	kills uint64
	ok    bool
}

// FindOOMWatch locates entry's memory cgroup from /proc/self/cgroup under
// the usual mount point /sys/fs/cgroup.
func FindOOMWatch() (*OOMWatch, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	return NewOOMWatch(string(b), "/sys/fs/cgroup")
}

// NewOOMWatch locates the memory cgroup named in procCgroup (the text of
// /proc/self/cgroup) under mount (where cgroupfs is mounted: the v1
// memory controller in mount/memory, or the v2 hierarchy in mount). A v1
// memory controller wins over the v2 line of a hybrid setup. When the
// named path does not exist (a container without its own cgroup namespace
// sees the host's path, but has its own cgroup mounted at the root), the
// mount point itself is used.
func NewOOMWatch(procCgroup, mount string) (*OOMWatch, error) {
	var v1Path, v2Path string
	v1, v2 := false, false
	sc := bufio.NewScanner(strings.NewReader(procCgroup))
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2, v2Path = true, f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				v1, v1Path = true, f[2]
			}
		}
	}
	var w *OOMWatch
	switch {
	case v1:
		w = &OOMWatch{root: filepath.Join(mount, "memory")}
		w.dir = pick(w.root, v1Path, "memory.oom_control")
	case v2:
		w = &OOMWatch{root: mount, v2: true}
		w.dir = pick(w.root, v2Path, "memory.events")
	default:
		return nil, errors.New("no memory cgroup in /proc/self/cgroup")
	}
	if w.dir == "" {
		return nil, fmt.Errorf("memory cgroup not found under %s", w.root)
	}
	if !w.Snapshot().ok {
		return nil, fmt.Errorf("cannot read the OOM-kill count in %s", w.dir)
	}
	return w, nil
}

// pick returns root/path, or root, whichever holds file.
func pick(root, path, file string) string {
	for _, d := range []string{filepath.Join(root, filepath.Clean("/"+path)), root} {
		if _, err := os.Stat(filepath.Join(d, file)); err == nil {
			return d
		}
	}
	return ""
}

// String names the cgroup, for entry's debug log.
func (w *OOMWatch) String() string {
	if w == nil {
		return "none"
	}
	v := "v1"
	if w.v2 {
		v = "v2"
	}
	return "cgroup " + v + " " + w.dir
}

// Snapshot returns the current OOM-kill count.
func (w *OOMWatch) Snapshot() OOMMark {
	if w == nil {
		return OOMMark{}
	}
	file := "memory.oom_control"
	if w.v2 {
		file = "memory.events"
	}
	n, ok := readKey(filepath.Join(w.dir, file), "oom_kill")
	return OOMMark{kills: n, ok: ok}
}

// KilledSince reports whether the kernel OOM-killed a process in the
// cgroup after m was taken, and the memory limit in bytes (0: none).
func (w *OOMWatch) KilledSince(m OOMMark) (bool, int64) {
	if w == nil || !m.ok {
		return false, 0
	}
	now := w.Snapshot()
	if !now.ok || now.kills <= m.kills {
		return false, 0
	}
	return true, w.limit()
}

// limit is the smallest memory limit from the cgroup up to the mount
// point: a parent's limit bounds its children.
func (w *OOMWatch) limit() int64 {
	file := "memory.limit_in_bytes"
	if w.v2 {
		file = "memory.max"
	}
	var lim int64
	for d := w.dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, file)); err == nil {
			s := strings.TrimSpace(string(b))
			// v1 writes "unlimited" as the largest page-aligned int64.
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < 1<<62 && (lim == 0 || n < lim) {
				lim = n
			}
		}
		if d == w.root || len(d) <= len(w.root) {
			return lim
		}
	}
}

// readKey reads "key value" lines and returns key's value.
func readKey(path, key string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// DeathCause explains an exit by SIGKILL (or a shell's 137 for a child it
// lost to SIGKILL) that entry did not send: "OOM-killed (memory limit 64
// MiB)" when the cgroup's OOM-kill count rose since m, else "cause unknown".
// Other exits need no explanation: "".
func (w *OOMWatch) DeathCause(e Exit, m OOMMark) string {
	if e.Signal != unix.SIGKILL && (e.Signal != 0 || e.Code != 128+int(syscall.SIGKILL)) {
		return ""
	}
	if killed, limit := w.KilledSince(m); killed {
		if limit == 0 {
			return "OOM-killed (no memory limit: the host ran out of memory)"
		}
		return "OOM-killed (memory limit " + Bytes(limit) + ")"
	}
	if w == nil {
		return "cause unknown: not sent by entry, no memory cgroup to ask about OOM kills"
	}
	return "cause unknown: not sent by entry, no OOM kill in the memory cgroup"
}

// Bytes formats a size as "64 MiB".
func Bytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
