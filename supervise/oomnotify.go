package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// notifier opens a file that becomes readable when the kernel may have
// changed the OOM-kill count, so that an idle entry reads it only then:
// cgroup v2 generates a file-modified event on memory.events when one of
// its values changes (inotify IN_MODIFY); cgroup v1 signals an eventfd
// registered in cgroup.event_control for memory.oom_control when the
// cgroup (or one above it) hits its limit, which needs that file to be
// writable. Both files are non-blocking, so a read waits in the runtime's
// poller, not on a thread. The caller closes the file, which also ends a
// v1 registration.
func (w *OOMWatch) notifier() (*os.File, error) {
	if w.v2 {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("inotify: %w", err)
		}
		path := filepath.Join(w.dir, "memory.events")
		if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("inotify on %s: %w", path, err)
		}
		return os.NewFile(uintptr(fd), "inotify "+path), nil
	}
	// Plain system calls, as readSmall: these files are only written or named once.
	ctlPath := filepath.Join(w.dir, "cgroup.event_control")
	ctl, err := unix.Open(ctlPath, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("OOM eventfd: open %s: %w", ctlPath, err)
	}
	defer unix.Close(ctl)
	ocPath := filepath.Join(w.dir, "memory.oom_control")
	oc, err := unix.Open(ocPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("OOM eventfd: open %s: %w", ocPath, err)
	}
	// The kernel only looks the file up while registering.
	defer unix.Close(oc)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if _, err := unix.Write(ctl, []byte(strconv.Itoa(efd)+" "+strconv.Itoa(oc)+"\n")); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("OOM eventfd: write %s: %w", ctlPath, err)
	}
	return os.NewFile(uintptr(efd), "eventfd memory.oom_control"), nil
}

// events turns f's readability into wakes (coalesced: one pending at most)
// until f is closed or a read fails; ended is closed then.
func events(f *os.File) (wake <-chan struct{}, ended <-chan struct{}) {
	c, done := make(chan struct{}, 1), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096) // inotify: whole events; eventfd: 8 bytes
		for {
			if _, err := f.Read(buf); err != nil {
				return // closed; or failed, and the watch falls back to polling
			}
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	return c, done
}
