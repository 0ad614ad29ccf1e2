//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Go's runtime gives signals 32 and 34 no handler, even when os/signal is
// asked for them: its table marks them as the C library's (glibc's
// SIGCANCEL, musl's SIGSYNCCALL, golang/go#39343), so signal.Notify
// records the wish and leaves the kernel's default in place, which
// terminates entry (or, as PID 1, drops the signal). SIGPROF does get a Go
// handler, but that handler feeds the CPU profiler and never passes the
// signal on.
//
// catchReserved gives those signals a handler of its own, written in
// assembly because it runs outside the Go runtime: it writes the signal's
// number to a pipe (write(2) is async-signal-safe) and returns. A goroutine
// reads the pipe and relays each number as a syscall.Signal. The handler
// touches nothing of Go's, runs on the thread's signal stack that Go sets
// up for every thread, and the kernel resets it to the default in a child
// at exec, as every caught signal is.

// catchable tells Notify that catchReserved's handler can take n: it is
// not in the mask entry's threads block.
func catchable(n syscall.Signal, blocked *unix.Sigset_t) bool {
	return blocked.Val[(n-1)/64]&(1<<((n-1)%64)) == 0
}

// sigcatchFD is the pipe's write end, read by sigcatchHandler.
var sigcatchFD int64 = -1

// sigcatchAddrs returns the addresses of sigcatchHandler and of the
// rt_sigreturn trampoline it returns to (amd64; arm64 uses the vDSO's).
func sigcatchAddrs() (handler, restorer uintptr)

var catcher struct {
	once sync.Once
	err  error
	mu   sync.Mutex
	subs []chan<- os.Signal
}

// Flags of struct sigaction (asm-generic/signal-defs.h).
const (
	saRestorer = 0x04000000
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
)

// kernelSigaction is struct sigaction as rt_sigaction(2) reads it on amd64
// and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func catchReserved(c chan<- os.Signal, sigs []syscall.Signal) error {
	catcher.mu.Lock()
	catcher.subs = append(catcher.subs, c)
	catcher.mu.Unlock()
	catcher.once.Do(func() { catcher.err = installCatcher(sigs) })
	return catcher.err
}

func installCatcher(sigs []syscall.Signal) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("signal pipe: %w", err)
	}
	// A full pipe drops signals, as a full channel does for os/signal;
	// the handler must never block.
	sigcatchFD = int64(p[1])
	r := os.NewFile(uintptr(p[0]), "signal pipe")
	handler, restorer := sigcatchAddrs()
	sa := kernelSigaction{
		handler: handler,
		flags:   saOnstack | saRestart,
		mask:    ^uint64(0),
	}
	if restorer != 0 {
		sa.flags |= saRestorer
		sa.restorer = restorer
	}
	for _, sig := range sigs {
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
		if errno != 0 {
			return fmt.Errorf("catch %s: %w", SignalName(sig), errno)
		}
	}
	go relayCaught(r)
	return nil
}

func relayCaught(r *os.File) {
	buf := make([]byte, 64)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			catcher.mu.Lock()
			for _, c := range catcher.subs {
				select {
				case c <- syscall.Signal(b):
				default:
				}
			}
			catcher.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}
