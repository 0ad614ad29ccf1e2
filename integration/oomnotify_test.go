package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
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
	cmd := exec.Command("sh", "-c", `echo $$ > "$0" && exec "$@"`, procs, entryBin)
	cmd.Env = cleanEnv("ENTRY_PROCFILE="+procfile, "ENTRY_USER=nobody", "ENTRY_LOG_LEVEL=debug")
	out := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	out.WaitFor(t, "the kernel OOM-killed 1 process(es) below entry's own (memory limit 64 MiB)", 30*time.Second)
	if !strings.Contains(out.String(), "OOM kills are read from the memory cgroup when the kernel notifies") {
		t.Errorf("the OOM count is polled\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("entry did not stop\n%s", out)
	}
}
