package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOOMNotifiedAsUser: entry registers for the kernel's OOM notification before it
// becomes ENTRY_USER (cgroup v1's cgroup.event_control is root's to write), and a worker
// OOM-killed below a master that lives on is still reported, from the notification.
func TestOOMNotifiedAsUser(t *testing.T) {
	procs := opsCgroup(t, 64<<20)
	// nobody must reach the binary; the Procfile is read before entry becomes nobody.
	if err := os.Chmod(filepath.Dir(entryBin), 0o755); err != nil {
		t.Fatal(err)
	}
	procfile := filepath.Join(t.TempDir(), "Procfile")
	os.WriteFile(procfile, []byte("master: sh -c 'python3 -c \"x = bytearray(200 << 20)\"; echo worker lost; sleep 60'\n"), 0o644)
	out, stop := startEntryInCgroup(t, procs, "ENTRY_PROCFILE="+procfile, "ENTRY_USER=nobody", "ENTRY_LOG_LEVEL=debug")
	out.WaitFor(t, "the kernel OOM-killed 1 process(es) below entry's own (memory limit 64 MiB)", 30*time.Second)
	if !strings.Contains(out.String(), "OOM kills are read from the memory cgroup when the kernel notifies") {
		t.Errorf("the OOM count is polled\n%s", out)
	}
	stop()
}
