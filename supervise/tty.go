package supervise

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// terminal is a controlling terminal whose foreground was handed to a
// child's process group.
type terminal struct{ fd int }

// isolate puts the child in its own process group. When stdin is our
// controlling terminal and no one else holds its foreground, the child's
// group takes the foreground, as a shell does for a job: Ctrl-C and job
// control then reach the child and not entry. It returns the terminal when
// it was handed over, else nil.
func isolate(cmd *exec.Cmd) *terminal {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	f, ok := cmd.Stdin.(*os.File)
	if !ok {
		return nil
	}
	fd := int(f.Fd())
	// TIOCGPGRP fails unless fd is our controlling terminal.
	fg, err := unix.IoctlGetUint32(fd, unix.TIOCGPGRP)
	if err != nil {
		return nil
	}
	// The foreground is free when it is our group, or the group of a child
	// that has exited. A live group of someone else's (the shell, for
	// entry ... &) keeps it.
	if int(fg) != unix.Getpgrp() && !errors.Is(unix.Kill(-int(fg), 0), unix.ESRCH) {
		return nil
	}
	// The child sets itself as the foreground with every signal blocked,
	// so the kernel does not stop it with SIGTTOU for doing so from the
	// background.
	cmd.SysProcAttr.Foreground = true
	cmd.SysProcAttr.Ctty = fd
	return &terminal{fd: fd}
}

// reclaim gives the foreground back to entry's own group once the child,
// leader of group pgid, has exited. Left to the child's dead group, the terminal's Ctrl-C would
// reach no one: in Procfile mode after a release step, entry would never
// hear it. A child that handed the foreground on to someone else (a shell
// to its last job) is left alone while that group lives.
func (t *terminal) reclaim(pgid int, log *slog.Logger) {
	if t == nil {
		return
	}
	fg, err := unix.IoctlGetUint32(t.fd, unix.TIOCGPGRP)
	if err != nil {
		return
	}
	if int(fg) != pgid && (fg == 0 || !errors.Is(unix.Kill(-int(fg), 0), unix.ESRCH)) {
		return // someone else's, or a group outside our PID namespace
	}
	self := unix.Getpgrp()
	if self == 0 {
		// Our group lives outside our PID namespace (unshare --fork from
		// a shell): it has no id here to hand the terminal to. A group of
		// our own, in the same session, has one.
		if err := unix.Setpgid(0, 0); err != nil {
			log.Warn("cannot take the terminal back", "err", err)
			return
		}
		self = unix.Getpgrp()
	}
	// From the background, TIOCSPGRP raises SIGTTOU unless the caller
	// blocks it; Go's handler would restart the call forever. Blocked on
	// this thread only, locked for the call.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ttou, old unix.Sigset_t
	ttou.Val[0] = 1 << (unix.SIGTTOU - 1)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &ttou, &old); err != nil {
		log.Warn("cannot take the terminal back", "err", err)
		return
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	if err := unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, self); err != nil {
		log.Warn("cannot take the terminal back", "err", err)
		return
	}
	log.Debug("took the terminal's foreground back", "pgid", self)
}
