package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entryBin is the real binary, built once with -race so the tests also exercise the race
// detector on the program as it runs.
var entryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "entry-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	entryBin = filepath.Join(dir, "entry")
	build := exec.Command("go", "build", "-race", "-o", entryBin, "../cmd/entry")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building entry:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished run of the binary.
type result struct {
	status         int
	stdout, stderr string
	elapsed        time.Duration
}

func (r result) output() string { return r.stdout + r.stderr }

// cleanEnv is a minimal environment: the tests must not see the developer's DATABASE_URL.
func cleanEnv(env ...string) []string {
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ENTRY_DISCOVER=true"}
	return append(base, env...)
}

// runEntry runs the binary to completion with env (KEY=VALUE) and args, bounded by timeout.
func runEntry(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, entryBin, args...)
	cmd.Env = cleanEnv(env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("entry %s did not finish within %s\n%s", strings.Join(args, " "), timeout, r.output())
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("entry %s: %v", strings.Join(args, " "), err)
		}
		r.status = ee.ExitCode()
	}
	return r
}
