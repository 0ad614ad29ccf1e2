package proctest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects what a process writes, for the test to read while the
// process runs. It is safe for concurrent use; the zero value is ready.
type Buffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // made by a waiter, closed by the next write
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor blocks until the buffer holds s, or fails the test after d. It
// wakes on writes, not on a timer.
func (b *Buffer) WaitFor(t testing.TB, s string, d time.Duration) {
	t.Helper()
	if !b.Await(s, d) {
		t.Fatalf("no %q in the output after %v", s, d)
	}
}

// Await blocks until the buffer holds s and reports true, or reports false
// after d.
func (b *Buffer) Await(s string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		b.mu.Lock()
		found := strings.Contains(b.buf.String(), s)
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return false
		}
	}
}
