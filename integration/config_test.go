package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBadFiles: every file entry reads is refused unless it is a regular file it can read, at
// once (no hang on a FIFO, no memory growth on /dev/zero), naming the variable.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.WriteFile(unreadable, []byte("postgres://db/app\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	// A symlink to a regular file is fine (Kubernetes mounts secrets that way); a symlink to
	// /dev/zero is not.
	zeroLink := filepath.Join(dir, "zero-link")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	vars := []string{"DATABASE_URL_FILE", "CELERY_BROKER_URL_FILE", "REDIS_URL_FILE", "POSTGRES_PASSWORD_FILE",
		"POSTGRES_USER_FILE", "POSTGRES_DB_FILE", "ENTRY_WAIT_FILE", "ENTRY_PROCFILE", "ENTRY_HTTP_CA_FILE"}
	marker := filepath.Join(dir, "started")
	for _, v := range vars {
		for _, bad := range []struct{ name, path, want string }{
			{"/dev/zero", "/dev/zero", "a device"},
			{"symlink to /dev/zero", zeroLink, "a device"},
			{"FIFO without a writer", fifo, "a FIFO"},
			{"directory", dir, "a directory"},
		} {
			args := []string{"--", "touch", marker}
			if v == "ENTRY_PROCFILE" {
				args = nil
			}
			r := runEntry(t, 10*time.Second, []string{v + "=" + bad.path}, args...)
			t.Logf("%s=%s: status %d after %s", v, bad.name, r.status, r.elapsed.Round(time.Millisecond))
			if r.status != 78 || !strings.Contains(r.stderr, v+": ") || !strings.Contains(r.stderr, bad.want) {
				t.Errorf("%s=%s: status %d, want 78 and %q naming %s\n%s", v, bad.name, r.status, bad.want, v, r.output())
			}
			// What this replaces is a hang (FIFO) or a read until out of memory (/dev/zero);
			// measured: 14-100 ms with the race detector on.
			if r.elapsed > time.Second {
				t.Errorf("%s=%s: took %s, want under a second", v, bad.name, r.elapsed)
			}
		}
		// Root reads a file whatever its mode, so the unreadable file is tried by an
		// unprivileged user, as a container's app user would meet it.
		args := []string{"--", "touch", marker}
		if v == "ENTRY_PROCFILE" {
			args = nil
		}
		r := runEntryAsNobody(t, []string{v + "=" + unreadable}, args...)
		if r.status != 78 || !strings.Contains(r.stderr, v+": ") || !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("%s=unreadable: status %d, want 78 and permission denied naming %s\n%s", v, r.status, v, r.output())
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran despite a bad file")
	}
}

// runEntryAsNobody runs the binary as uid/gid 65534, which cannot read a mode-000 file.
func runEntryAsNobody(t *testing.T, env []string, args ...string) result {
	t.Helper()
	// The binary's directory is private to root; nobody needs to reach it.
	if err := os.Chmod(filepath.Dir(entryBin), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, entryBin, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.status = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("entry as nobody: %v", err)
	}
	return r
}

// TestGoodFileThroughSymlinks: a Kubernetes secret is a symlink to a symlink to the file.
func TestGoodFileThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..data", "DATABASE_URL")
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data, []byte("pgsql://app:Db-s3cret@db:5432/app\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "DATABASE_URL")
	if err := os.Symlink(filepath.Join("..data", "DATABASE_URL"), link); err != nil {
		t.Fatal(err)
	}
	r := runEntry(t, 10*time.Second, []string{"DATABASE_URL_FILE=" + link}, "config")
	if r.status != 0 || !strings.Contains(r.stdout, "postgres app@db:5432/app") || strings.Contains(r.output(), "s3cret") {
		t.Errorf("status %d\n%s", r.status, r.output())
	}
}
