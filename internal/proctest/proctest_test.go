package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// start runs argv with its output in a Buffer and kills it when the test
// ends.
func start(t *testing.T, argv ...string) (*exec.Cmd, *Buffer) {
	t.Helper()
	out := &Buffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range Descendants(cmd.Process.Pid) {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, out
}

// poll checks cond every few milliseconds until it holds, or fails the test
// after ten seconds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTree(t *testing.T) {
	t.Parallel()
	// sh is our child; the two sleeps are its children, and the grandchild
	// is a child of the subshell. Each reports its pid once it runs.
	cmd, out := start(t, "/bin/sh", "-c", `
sleep 60 & echo "a $!"
sleep 61 & echo "b $!"
(sleep 62 & echo "c $!"; wait) &
wait`)
	out.WaitFor(t, "c ", 10*time.Second)
	pids := map[string]int{}
	for _, f := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		name, pid, _ := strings.Cut(f, " ")
		pids[name], _ = strconv.Atoi(pid)
	}
	sh := cmd.Process.Pid

	kids := Children(sh)
	if len(kids) != 3 || !slices.Contains(kids, pids["a"]) || !slices.Contains(kids, pids["b"]) {
		t.Errorf("Children(sh) = %v, want the two sleeps %d %d and the subshell", kids, pids["a"], pids["b"])
	}
	all := Descendants(sh)
	if len(all) != 4 || !slices.Contains(all, pids["c"]) {
		t.Errorf("Descendants(sh) = %v, want 4 with the grandchild %d", all, pids["c"])
	}
	if got := Descendants(os.Getpid()); !slices.Contains(got, pids["c"]) {
		t.Errorf("Descendants(self) = %v, want the grandchild %d in it", got, pids["c"])
	}
	if got := Children(pids["a"]); len(got) != 0 {
		t.Errorf("Children(sleep) = %v, want none", got)
	}
}

func TestChildWith(t *testing.T) {
	t.Parallel()
	cmd, out := start(t, "/bin/sh", "-c", `sleep 60 & echo "a $!"; sleep 61 & echo "b $!"; wait`)
	out.WaitFor(t, "b ", 10*time.Second)
	var a, b int
	fmt.Sscanf(out.String(), "a %d\nb %d", &a, &b)
	// The shell prints a pid once it has forked, maybe before the exec.
	poll(t, "both sleeps exec'd", func() bool {
		return ChildWith(cmd.Process.Pid, "sleep", "60") != 0 && ChildWith(cmd.Process.Pid, "sleep", "61") != 0
	})
	tests := []struct {
		words []string
		want  int
	}{
		{[]string{"sleep", "61"}, b},
		{[]string{"60"}, a},
		{[]string{"sleep", "6"}, 0}, // whole arguments only
		{[]string{"sleep", "62"}, 0},
	}
	for _, tt := range tests {
		if got := ChildWith(cmd.Process.Pid, tt.words...); got != tt.want {
			t.Errorf("ChildWith(%q) = %d, want %d", tt.words, got, tt.want)
		}
	}
}

// Under script's pseudo-terminal the sleep is in the foreground; tail, in a
// session of its own, is not.
func TestForeground(t *testing.T) {
	t.Parallel()
	cmd, out := start(t, "script", "-qec", "setsid tail -f /dev/null & echo started; exec sleep 60", "/dev/null")
	out.WaitFor(t, "started", 10*time.Second)
	poll(t, "sleep in the terminal's foreground", func() bool { return Foreground(cmd.Process.Pid, "sleep") != 0 })
	poll(t, "tail exec'd", func() bool { return ChildWith(Foreground(cmd.Process.Pid, "sleep"), "tail") != 0 })
	if got := Foreground(cmd.Process.Pid, "tail"); got != 0 {
		t.Errorf("Foreground(tail) = %d, want 0: it has no terminal", got)
	}
}

func TestStatOddName(t *testing.T) {
	t.Parallel()
	odd := t.TempDir() + "/a) (b"
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd, _ := start(t, odd, "60")
	comm, f := stat(cmd.Process.Pid)
	if comm != "a) (b" || len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
		t.Errorf("stat = %q %q, want name %q and our pid as ppid", comm, f, "a) (b")
	}
	if comm, f := stat(-1); comm != "" || f != nil {
		t.Errorf("stat(-1) = %q %q, want nothing", comm, f)
	}
}

func TestBufferWaitFor(t *testing.T) {
	t.Parallel()
	var b Buffer
	go func() {
		for i := range 100 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	}()
	b.WaitFor(t, "line 99\n", 10*time.Second)
	if got := strings.Count(b.String(), "\n"); got != 100 {
		t.Errorf("got %d lines, want 100", got)
	}
	b.WaitFor(t, "line 0\n", time.Second) // already there: no write needed
}
