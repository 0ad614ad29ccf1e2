package supervise

import (
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		sig        os.Signal
		running    Action // while a process runs
		idle       Action // before any runs
		translated syscall.Signal
	}{
		{syscall.SIGTERM, Stop, Stop, syscall.SIGQUIT},
		{syscall.SIGINT, Stop, Stop, syscall.SIGINT},
		{syscall.SIGQUIT, Stop, Stop, syscall.SIGQUIT},
		{syscall.SIGHUP, Forward, Stop, syscall.SIGHUP},
		{syscall.SIGTTIN, Forward, Ignore, syscall.SIGTTIN},
		{syscall.SIGWINCH, Forward, Ignore, syscall.SIGWINCH},
		{syscall.SIGPROF, Forward, Ignore, syscall.SIGPROF},
		{syscall.Signal(34), Forward, Ignore, syscall.Signal(34)},
		{syscall.Signal(64), Forward, Ignore, syscall.Signal(64)},
		{syscall.SIGCHLD, Ignore, Ignore, syscall.SIGCHLD},
		{syscall.SIGURG, Ignore, Ignore, syscall.SIGURG},
		{syscall.SIGPIPE, Ignore, Ignore, syscall.SIGPIPE},
	}
	for _, tt := range tests {
		if got := Classify(tt.sig, true); got != tt.running {
			t.Errorf("Classify(%v, running) = %v, want %v", tt.sig, got, tt.running)
		}
		if got := Classify(tt.sig, false); got != tt.idle {
			t.Errorf("Classify(%v, idle) = %v, want %v", tt.sig, got, tt.idle)
		}
		if got := translate(tt.sig.(syscall.Signal), syscall.SIGQUIT); got != tt.translated {
			t.Errorf("translate(%v, SIGQUIT) = %v, want %v", tt.sig, got, tt.translated)
		}
	}
	if Classify(os.Interrupt, true) != Stop {
		t.Errorf("Classify(os.Interrupt) is not Stop")
	}
}

func TestParseStopSignal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want syscall.Signal
	}{
		{"TERM", syscall.SIGTERM}, {"sigquit", syscall.SIGQUIT}, {" int ", syscall.SIGINT},
		{"15", syscall.SIGTERM}, {"64", syscall.Signal(64)},
	} {
		if got, err := ParseStopSignal(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseStopSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "65", "-1", "NOPE", "KILL", "SIGSTOP", "CHLD", "URG", "9"} {
		if got, err := ParseStopSignal(bad); err == nil {
			t.Errorf("ParseStopSignal(%q) = %v, want an error", bad, got)
		}
	}
}

func TestStatus(t *testing.T) {
	for sig := syscall.Signal(1); sig <= maxSignal; sig++ {
		if got := signalOfStatus(Status(sig)); got != sig {
			t.Errorf("signalOfStatus(Status(%d)) = %d", sig, got)
		}
	}
	for _, code := range []int{0, 1, 128, 193, 255} {
		if got := signalOfStatus(code); got != 0 {
			t.Errorf("signalOfStatus(%d) = %d, want 0", code, got)
		}
	}
}
