package supervise

import (
	"os"
	"syscall"
	"testing"
)

func TestForwarding(t *testing.T) {
	tests := []struct {
		sig        os.Signal
		forward    bool
		stop       bool
		translated syscall.Signal // with QUIT as the stop signal
	}{
		{syscall.SIGTERM, true, true, syscall.SIGQUIT},
		{syscall.SIGINT, true, true, syscall.SIGINT},
		{syscall.SIGQUIT, true, true, syscall.SIGQUIT},
		{syscall.SIGHUP, true, false, syscall.SIGHUP},
		{syscall.SIGTTIN, true, false, syscall.SIGTTIN},
		{syscall.SIGWINCH, true, false, syscall.SIGWINCH},
		{syscall.SIGCHLD, false, false, syscall.SIGCHLD},
		{syscall.SIGURG, false, false, syscall.SIGURG},
		{syscall.SIGPIPE, false, false, syscall.SIGPIPE},
	}
	for _, tt := range tests {
		if got := forwardable(tt.sig); got != tt.forward {
			t.Errorf("forwardable(%v) = %v, want %v", tt.sig, got, tt.forward)
		}
		if got := stopping(tt.sig); got != tt.stop {
			t.Errorf("stopping(%v) = %v, want %v", tt.sig, got, tt.stop)
		}
		if got := translate(tt.sig.(syscall.Signal), syscall.SIGQUIT); got != tt.translated {
			t.Errorf("translate(%v, SIGQUIT) = %v, want %v", tt.sig, got, tt.translated)
		}
	}
	if forwardable(os.Interrupt) != true {
		t.Errorf("forwardable(os.Interrupt) = false, want true")
	}
}
