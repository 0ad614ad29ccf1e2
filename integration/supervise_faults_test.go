package integration

// Supervision faults found by trying the binary as a hostile user would,
// each run against the binary as PID 1 (or under tini, as with docker run
// --init); each failed before its fix.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
)

func superviseProcfile(t *testing.T, body string) string {
	t.Helper()
	pf := filepath.Join(t.TempDir(), "Procfile")
	if err := os.WriteFile(pf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return pf
}

// The reproduction: the shell that started a web server is
// SIGKILLed; the server it left is stopped before the restart, which gets
// the port, and the container stays up.
func TestPID1SuperviseOrphanPortAcrossRestart(t *testing.T) {
	port := throwaway.FreePort(t)
	pf := superviseProcfile(t, fmt.Sprintf("web: sh -c \"python3 -m http.server --bind 127.0.0.1 %d & wait $!\"\n", port))
	n := startPID1(t, []string{pid1NoAtExitSleep, "ENTRY_PROCFILE=" + pf, "ENTRY_SKIP_WAIT=1"})
	n.waitOutput("Serving HTTP", 20*time.Second)
	var sh int
	for _, pid := range proctest.Children(n.pid1) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(b)) == "sh" {
			sh = pid
		}
	}
	if sh == 0 {
		t.Fatalf("no sh below entry\n%s", n.out)
	}
	if err := syscall.Kill(sh, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.waitOutput("process restarted process=web.1", 20*time.Second)
	deadline := time.After(20 * time.Second)
	for strings.Count(n.out.String(), "Serving HTTP") < 2 {
		if strings.Contains(n.out.String(), "Address already in use") {
			t.Fatalf("the restarted server found its port held\n%s", n.out)
		}
		select {
		case <-deadline:
			t.Fatalf("the restarted server did not serve\n%s", n.out)
		case <-time.After(5 * time.Millisecond):
		}
	}
	n.signal(syscall.SIGTERM)
	if status := n.wait(20 * time.Second); status != 0 {
		t.Errorf("status %d, want 0\n%s", status, n.out)
	}
	pid1NoRace(t, n.out.String())
}

// Ctrl-C typed in a terminal stops a Procfile run that had a release step
// first: the step had the terminal's foreground, and entry takes it back.
func TestPID1SuperviseCtrlCAfterRelease(t *testing.T) {
	pf := superviseProcfile(t, "web: sleep 1000\n")
	term := pid1StartTerminal(t, []string{"ENTRY_PROCFILE=" + pf, "ENTRY_SKIP_WAIT=1", "ENTRY_RELEASE=true"},
		"script", "-qec", "unshare --pid --fork --mount-proc --kill-child "+entryBin, "/dev/null")
	term.expect(`process started process=web\.1`, 30*time.Second)
	term.write("\x03")
	term.expect(`stopping reason="received SIGINT"`, 20*time.Second)
	if status := term.wait(20 * time.Second); status != 0 {
		t.Errorf("status %d, want 0\n%s", status, term.out)
	}
	pid1NoRace(t, term.out.String())
}

// Signals Go's os/signal cannot catch (32, 34, SIGPROF) reach the main
// process when entry is not PID 1 (under tini, as docker run --init),
// instead of killing entry and orphaning it.
func TestPID1SuperviseReservedSignalsUnderTini(t *testing.T) {
	for _, sig := range []syscall.Signal{32, 34, syscall.SIGPROF} {
		t.Run(strconv.Itoa(int(sig)), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
				"tini", "--", entryBin, "--", "sleep", "1000")
			cmd.Env = cleanEnv(pid1NoAtExitSleep, "ENTRY_SKIP_WAIT=1")
			out := &proctest.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				for _, pid := range proctest.Descendants(cmd.Process.Pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				_ = cmd.Process.Kill()
				<-done
			})
			out.WaitFor(t, "not waiting for dependencies", 20*time.Second)
			var entry int
			deadline := time.Now().Add(20 * time.Second)
			for entry == 0 {
				for _, pid := range proctest.Descendants(cmd.Process.Pid) {
					if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); exe == entryBin && proctest.ChildWith(pid, "sleep", "1000") != 0 {
						entry = pid
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("entry and its sleep did not start\n%s", out)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := syscall.Kill(entry, sig); err != nil {
				t.Fatal(err)
			}
			want := 128 + int(sig)
			out.WaitFor(t, fmt.Sprintf("exiting with status %d", want), 20*time.Second)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("still running\n%s", out)
			}
			if got := cmd.ProcessState.ExitCode(); got != want {
				t.Errorf("status %d, want %d\n%s", got, want, out)
			}
		})
	}
}

// In JSON mode every line entry writes is a JSON record, the release
// step's output included.
func TestPID1SuperviseJSONOnly(t *testing.T) {
	pf := superviseProcfile(t, "web: sh -c 'echo web up; exec sleep 1000'\n")
	n := startPID1(t, []string{pid1NoAtExitSleep, "ENTRY_PROCFILE=" + pf, "ENTRY_SKIP_WAIT=1",
		"ENTRY_LOG_FORMAT=json", "ENTRY_RELEASE=sh -c 'echo migrated; echo warned >&2'"})
	n.waitOutput("web up", 20*time.Second)
	n.signal(syscall.SIGTERM)
	if status := n.wait(20 * time.Second); status != 0 {
		t.Errorf("status %d, want 0\n%s", status, n.out)
	}
	out := n.out.String()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("not JSON: %q", l)
		}
	}
	for _, want := range []string{`"stream":"stdout","line":"migrated"`, `"stream":"stderr","line":"warned"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in\n%s", want, out)
		}
	}
}
