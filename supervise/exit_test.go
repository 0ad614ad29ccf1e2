package supervise

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExit(t *testing.T) {
	tests := []struct {
		exit       Exit
		wantStatus int
		wantString string
	}{
		{Exit{Code: 0}, 0, "exited with status 0"},
		{Exit{Code: 3}, 3, "exited with status 3"},
		{Exit{Code: 255}, 255, "exited with status 255"},
		{Exit{Signal: syscall.SIGTERM}, 143, "killed by SIGTERM"},
		{Exit{Signal: syscall.SIGUSR1}, 138, "killed by SIGUSR1"},
		{Exit{Signal: syscall.SIGKILL}, 137, "killed by SIGKILL"},
		{Exit{Signal: syscall.Signal(40)}, 168, "killed by signal 40"},
	}
	for _, tt := range tests {
		if got := tt.exit.Status(); got != tt.wantStatus {
			t.Errorf("%#v.Status() = %d, want %d", tt.exit, got, tt.wantStatus)
		}
		if got := tt.exit.String(); got != tt.wantString {
			t.Errorf("%#v.String() = %q, want %q", tt.exit, got, tt.wantString)
		}
	}
}

func TestExitOf(t *testing.T) {
	tests := []struct {
		ws   unix.WaitStatus
		want Exit
	}{
		{unix.WaitStatus(0), Exit{Pid: 7}},
		{unix.WaitStatus(42 << 8), Exit{Pid: 7, Code: 42}},
		{unix.WaitStatus(15), Exit{Pid: 7, Signal: syscall.SIGTERM}},
		{unix.WaitStatus(11 | 0x80), Exit{Pid: 7, Signal: syscall.SIGSEGV}}, // core dumped
	}
	for _, tt := range tests {
		if got := exitOf(7, tt.ws); got != tt.want {
			t.Errorf("exitOf(7, %#x) = %#v, want %#v", uint32(tt.ws), got, tt.want)
		}
	}
}
