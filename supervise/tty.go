package supervise

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// isolate puts the child in its own process group. When stdin is our
// controlling terminal and we hold its foreground, the child's group takes
// the foreground instead, as a shell does for a job: Ctrl-C and job control
// then reach the child and not entry. It returns the terminal's descriptor,
// or -1 when the terminal was not handed over.
func isolate(cmd *exec.Cmd) int {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	f, ok := cmd.Stdin.(*os.File)
	if !ok {
		return -1
	}
	fd := int(f.Fd())
	// TIOCGPGRP fails unless fd is our controlling terminal. A background
	// entry (entry ... &) must not steal the terminal from the shell.
	pgrp, err := unix.IoctlGetUint32(fd, unix.TIOCGPGRP)
	if err != nil || int(pgrp) != unix.Getpgrp() {
		return -1
	}
	cmd.SysProcAttr.Foreground = true
	cmd.SysProcAttr.Ctty = fd
	return fd
}

// reclaim gives the terminal's foreground back to entry's group once the
// child is gone, so the next child (the main process after a release step)
// can be handed it again. From a background group TIOCSPGRP raises SIGTTOU,
// which entry catches, so the ioctl would be restarted forever; blocking
// SIGTTOU on this thread makes the kernel allow it, as it does for a shell.
func reclaim(fd int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var block, old unix.Sigset_t
	block.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &block, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
}
