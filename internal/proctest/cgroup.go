package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MemoryCgroup makes a memory cgroup limited to limit bytes (without swap) under
// /sys/fs/cgroup (v1's memory controller, or v2) and returns its directory; a pid
// written to its cgroup.procs moves that process in. It is removed at the end of the
// test, once its last process is gone. v1 reports whether it is a v1 cgroup. Root only.
func MemoryCgroup(t testing.TB, limit int64) (dir string, v1 bool) {
	t.Helper()
	name := fmt.Sprintf("entry-oom-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		dir = filepath.Join("/sys/fs/cgroup/memory", name)
		mkCgroup(t, dir)
		writeInt(t, filepath.Join(dir, "memory.limit_in_bytes"), limit)
		// With swap accounting, the limit on memory and swap together, or the
		// process swaps instead of being killed.
		if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
			writeInt(t, filepath.Join(dir, "memory.memsw.limit_in_bytes"), limit)
		}
		return dir, true
	}
	dir = filepath.Join("/sys/fs/cgroup", name)
	mkCgroup(t, dir)
	writeInt(t, filepath.Join(dir, "memory.max"), limit)
	writeInt(t, filepath.Join(dir, "memory.swap.max"), 0)
	return dir, false
}

func mkCgroup(t testing.TB, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rmCgroup(t, dir) })
}

func writeInt(t testing.TB, path string, n int64) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strconv.FormatInt(n, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rmCgroup removes a cgroup once its last process is gone (the kernel frees it a
// moment after the exit).
func rmCgroup(t testing.TB, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("cannot remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
