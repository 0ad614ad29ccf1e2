package supervise

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// isolate puts the child in its own process group. When stdin is our
// controlling terminal and no one else holds its foreground, the child's
// group takes the foreground, as a shell does for a job: Ctrl-C and job
// control then reach the child and not entry. It reports whether the
// terminal was handed over.
func isolate(cmd *exec.Cmd) bool {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	f, ok := cmd.Stdin.(*os.File)
	if !ok {
		return false
	}
	fd := int(f.Fd())
	// TIOCGPGRP fails unless fd is our controlling terminal.
	fg, err := unix.IoctlGetUint32(fd, unix.TIOCGPGRP)
	if err != nil {
		return false
	}
	// The foreground is free when it is our group, or the group of a child
	// that has exited (a release step before the main process). A live
	// group of someone else's (the shell, for entry ... &) keeps it.
	if int(fg) != unix.Getpgrp() && !errors.Is(unix.Kill(-int(fg), 0), unix.ESRCH) {
		return false
	}
	// The child sets itself as the foreground with every signal blocked,
	// so the kernel does not stop it with SIGTTOU for doing so from the
	// background.
	cmd.SysProcAttr.Foreground = true
	cmd.SysProcAttr.Ctty = fd
	return true
}
