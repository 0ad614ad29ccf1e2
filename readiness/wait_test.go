package readiness

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

// fakeChecker returns results in order, repeating the last one.
type fakeChecker struct {
	name    string
	mu      sync.Mutex
	results []error
	calls   int
	// block makes Check wait for ctx (or, with ignoreCtx, forever).
	block     bool
	ignoreCtx bool
	release   chan struct{}
	cancelled chan struct{} // closed when a blocked Check sees ctx done
}

func (f *fakeChecker) String() string { return f.name }

func (f *fakeChecker) Check(ctx context.Context) error {
	f.mu.Lock()
	f.calls++
	n := f.calls
	var err error
	if len(f.results) > 0 {
		err = f.results[min(n, len(f.results))-1]
	}
	f.mu.Unlock()
	if f.block && n > len(f.results) {
		if f.ignoreCtx {
			<-f.release
			return errors.New("released")
		}
		<-ctx.Done()
		if f.cancelled != nil {
			close(f.cancelled)
		}
		return ctx.Err()
	}
	return err
}

func (f *fakeChecker) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// recorder is a slog.Handler that keeps records.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{r, as}
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

type withAttrs struct {
	*recorder
	as []slog.Attr
}

func (w *withAttrs) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(w.as...)
	return w.recorder.Handle(ctx, rec)
}
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{w.recorder, append(append([]slog.Attr{}, w.as...), as...)}
}

func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Message == msg {
			n++
		}
	}
	return n
}

func (r *recorder) states() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Message != "dependency not ready" {
			continue
		}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "state" {
				out = append(out, a.Value.String())
			}
			return true
		})
	}
	return out
}

func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	for _, rec := range r.recs {
		sb.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			sb.WriteString(" " + a.String())
			return true
		})
		sb.WriteString("\n")
	}
	return sb.String()
}

// fakeClock is a clock whose After advances time instantly.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Factor: 2, Jitter: 0.2}
	for _, tc := range []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{0, 0.5, 0},
		{-1, 0.5, 0},
		{1, 0.5, 100 * time.Millisecond},
		{2, 0.5, 200 * time.Millisecond},
		{3, 0.5, 400 * time.Millisecond},
		{5, 0.5, 1600 * time.Millisecond},
		{6, 0.5, 2 * time.Second},
		{1000, 0.5, 2 * time.Second}, // no overflow
		{1, 0, 80 * time.Millisecond},
		{1, 1, 120 * time.Millisecond},
		{3, 0.75, 440 * time.Millisecond},
		{6, 0, 1600 * time.Millisecond},
		{6, 0.999, 2 * time.Second}, // jitter never exceeds Max
		{1, math.NaN(), 100 * time.Millisecond},
	} {
		if got := b.Delay(tc.attempt, tc.rnd); got != tc.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", tc.attempt, tc.rnd, got, tc.want)
		}
	}
	// Degenerate parameters.
	if got := (Backoff{Initial: time.Second, Factor: 0.5}).Delay(4, 0.5); got != time.Second {
		t.Errorf("factor < 1 must count as 1: got %v", got)
	}
	if got := (Backoff{Initial: time.Second, Factor: 10}).Delay(100, 0.5); got != time.Duration(math.MaxInt64) {
		t.Errorf("uncapped overflow: got %v", got)
	}
	if got := (Backoff{}).Delay(3, 0.5); got != 0 {
		t.Errorf("zero backoff: got %v", got)
	}
}

func TestWaitBackoffSchedule(t *testing.T) {
	clk := newFakeClock()
	pg57 := retry("57P03 the database system is starting up", errors.New("FATAL: the database system is starting up (SQLSTATE 57P03)"))
	fc := &fakeChecker{name: "dep", results: []error{refused(), refused(), pg57, pg57, pg57, pg57, refused(), nil}}
	err := Wait(context.Background(), []Checker{fc}, Options{
		Backoff:          Backoff{Initial: time.Second, Max: 5 * time.Second, Factor: 3, Jitter: 0.5},
		FreeInterval:     10 * time.Millisecond,
		ProgressInterval: -1,
		Now:              clk.Now, After: clk.After, Rand: func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Refused: the short interval. The first 57P03 of a row: still short;
	// the next ones back off. Refused again: short again.
	ms := time.Millisecond
	want := []time.Duration{10 * ms, 10 * ms, 10 * ms, time.Second, 3 * time.Second, 5 * time.Second, 10 * ms}
	if !slices.Equal(clk.sleeps, want) {
		t.Fatalf("sleeps %v, want %v", clk.sleeps, want)
	}
	if fc.Calls() != 8 {
		t.Errorf("calls = %d, want 8 (first attempt immediate)", fc.Calls())
	}
}

func TestSchedulePause(t *testing.T) {
	ms := time.Millisecond
	s := Schedule{Free: 20 * ms, Backoff: Backoff{Initial: 100 * ms, Max: time.Second, Factor: 2, Jitter: 0.2}}
	for _, tc := range []struct {
		answered int
		rnd      float64
		want     time.Duration
	}{
		{0, 0.5, 20 * ms}, // refused
		{0, 0, 16 * ms},   // jitter spreads replicas, ±20 %
		{0, 0.75, 22 * ms},
		{-1, 0.5, 20 * ms},
		{1, 0.5, 20 * ms}, // first "starting up" of a row
		{2, 0.5, 100 * ms},
		{2, 0, 80 * ms},
		{3, 0.5, 200 * ms},
		{5, 0.5, 800 * ms},
		{6, 0.5, time.Second},
		{1000, 0.999, time.Second}, // never above the cap
	} {
		if got := s.Pause(tc.answered, tc.rnd); got != tc.want {
			t.Errorf("Pause(%d, %v) = %v, want %v", tc.answered, tc.rnd, got, tc.want)
		}
	}
	capped := Schedule{Free: 2 * time.Second, Backoff: Backoff{Initial: 100 * ms, Max: time.Second, Factor: 2}}
	if got := capped.Pause(0, 0.5); got != time.Second {
		t.Errorf("a free interval above Backoff.Max: Pause = %v, want the cap", got)
	}
}

func TestFree(t *testing.T) {
	unreach := func(e syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: e}}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{refused(), true},
		{unreach(syscall.ENETUNREACH), true},
		{unreach(syscall.EHOSTUNREACH), true},
		{retry("connection refused", refused()), true},
		{retry("57P03 the database system is starting up", errors.New("FATAL")), false},
		{retry("LOADING", errors.New("LOADING Redis is loading the dataset in memory")), false},
		{unreach(syscall.ECONNRESET), false},
		{&net.DNSError{Err: "no such host", Name: "db", IsNotFound: true}, false},
		{context.DeadlineExceeded, false},
		{errors.New("HTTP 503"), false},
	} {
		if got := Free(tc.err); got != tc.want {
			t.Errorf("Free(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// Every checker's refusal, as its driver wraps it, is seen as free.
func TestFreeSeesThroughDrivers(t *testing.T) {
	addr := throwaway.FreeAddr(t)
	var checks []Checker
	for _, mk := range []func() (Checker, error){
		func() (Checker, error) { return NewTCP(addr) },
		func() (Checker, error) { return NewPostgres("postgres://u@" + addr + "/db?sslmode=disable") },
		func() (Checker, error) { return NewRedis("redis://" + addr + "/0") },
		func() (Checker, error) { return NewAMQP("amqp://guest:guest@" + addr + "/") },
		func() (Checker, error) { return NewHTTP("http://"+addr+"/health", HTTPOptions{}) },
	} {
		c, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		checks = append(checks, c)
	}
	for _, r := range Probe(context.Background(), checks, 5*time.Second) {
		if r.Err == nil || !Free(r.Err) {
			t.Errorf("%s: Free(%v) = false, want true (nothing listens on %s)", r.Target, r.Err, addr)
		}
	}
}

// A refused port is probed about fifty times a second, not once a second.
func TestWaitRefusedIsProbedOften(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeChecker{name: "tcp db:5432", results: []error{refused()}}
		err := Wait(context.Background(), []Checker{fc}, Options{Timeout: 10 * time.Second})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if c := fc.Calls(); c < 400 || c > 650 {
			t.Errorf("attempts on a refused port in 10s = %d, want about 500", c)
		}
	})
}

func TestWaitProgressLinesPerStateChange(t *testing.T) {
	clk := newFakeClock()
	rec := &recorder{}
	pg57 := retry("57P03 the database system is starting up", errors.New("FATAL: the database system is starting up (SQLSTATE 57P03)"))
	var results []error
	for range 5 {
		results = append(results, refused())
	}
	for range 5 {
		results = append(results, pg57)
	}
	results = append(results, nil)
	fc := &fakeChecker{name: "postgres app@db:5432/app", results: results}
	err := Wait(context.Background(), []Checker{fc}, Options{
		Backoff:          Backoff{Initial: time.Second, Max: 4 * time.Second, Factor: 2, Jitter: 0},
		FreeInterval:     2 * time.Second,
		ProgressInterval: 10 * time.Second,
		Log:              slog.New(rec),
		Now:              clk.Now, After: clk.After, Rand: func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Attempts at t=0,2,4,6,8 (refused), 10,12,13,15,19 (57P03), 23 (ready);
	// "still waiting" at t=10 and t=20.
	for msg, want := range map[string]int{
		"dependency not ready":   2,
		"still waiting":          2,
		"dependency ready":       1,
		"all dependencies ready": 1,
	} {
		if got := rec.count(msg); got != want {
			t.Errorf("%q lines = %d, want %d\n%s", msg, got, want, rec.text())
		}
	}
	if got := rec.states(); strings.Join(got, "|") != "connection refused|57P03 the database system is starting up" {
		t.Errorf("states = %q", got)
	}
	if !strings.Contains(rec.text(), "dependency ready after=23s attempts=11") {
		t.Errorf("ready line lacks time-to-ready and attempts:\n%s", rec.text())
	}
}

func TestWaitDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		slow := &fakeChecker{name: "redis cache:6379/0", results: []error{refused(), retry("LOADING", errors.New("LOADING Redis is loading the dataset in memory"))}}
		ok := &fakeChecker{name: "tcp ok:1", results: []error{nil}}
		start := time.Now()
		err := Wait(context.Background(), []Checker{slow, ok}, Options{Timeout: 25 * time.Second, Log: slog.New(rec)})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d != 25*time.Second {
			t.Errorf("returned after %v, want exactly the 25s deadline", d)
		}
		msg := err.Error()
		for _, want := range []string{"redis cache:6379/0", "LOADING Redis is loading", "attempts"} {
			if !strings.Contains(msg, want) {
				t.Errorf("timeout error %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "tcp ok:1") {
			t.Errorf("timeout error names a ready dependency: %q", msg)
		}
		if n := rec.count("still waiting"); n != 2 {
			t.Errorf("still waiting lines = %d, want 2 (at 10s and 20s)\n%s", n, rec.text())
		}
		// Default backoff: about one attempt a second after the first
		// few, nowhere near one per few ms.
		if c := slow.Calls(); c < 20 || c > 40 {
			t.Errorf("attempts in 25s = %d", c)
		}
	})
}

func TestWaitDeadlineOfParentContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := Wait(ctx, []Checker{&fakeChecker{name: "x", results: []error{refused()}}}, Options{})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	})
}

func TestWaitCancellationIsPrompt(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(map[bool]string{false: "honours ctx", true: "ignores ctx"}[ignore], func(t *testing.T) {
			fc := &fakeChecker{name: "stuck", results: []error{refused()}, block: true, ignoreCtx: ignore, release: make(chan struct{})}
			defer close(fc.release)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Wait(ctx, []Checker{fc}, Options{AttemptTimeout: time.Hour, Backoff: Backoff{Initial: time.Millisecond}})
			}()
			for fc.Calls() < 2 { // the second attempt blocks
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
			t0 := time.Now()
			cancel()
			err := <-done
			if d := time.Since(t0); d > 50*time.Millisecond {
				t.Errorf("Wait returned %v after cancellation", d)
			}
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		})
	}
}

func TestWaitPermanentCancelsOthers(t *testing.T) {
	bad := &fakeChecker{name: "postgres app@db:5432/app", results: []error{
		refused(), permanent(errors.New("FATAL: password authentication failed"), "check the password"),
	}}
	other := &fakeChecker{name: "redis", block: true, cancelled: make(chan struct{})}
	err := Wait(context.Background(), []Checker{bad, other}, Options{Backoff: Backoff{Initial: time.Millisecond}})
	var pe *PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PermanentError", err)
	}
	if pe.Hint != "check the password" || !strings.HasPrefix(err.Error(), "postgres app@db:5432/app: ") {
		t.Errorf("err = %q", err)
	}
	select {
	case <-other.cancelled:
	case <-time.After(time.Second):
		t.Fatal("the other dependency's check was not cancelled")
	}
}

func TestWaitAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeChecker{name: "hangs", block: true, ignoreCtx: true, release: make(chan struct{})}
		defer close(fc.release)
		rec := &recorder{}
		err := Wait(context.Background(), []Checker{fc}, Options{Timeout: 10 * time.Second, AttemptTimeout: time.Second, Log: slog.New(rec)})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		if c := fc.Calls(); c < 4 {
			t.Errorf("a check that ignores its context blocked the wait: %d attempts in 10s", c)
		}
		if got := rec.states(); len(got) != 1 || got[0] != "timeout" {
			t.Errorf("states = %q, want [timeout]", got)
		}
	})
}

func TestWaitNoCheckers(t *testing.T) {
	if err := Wait(context.Background(), nil, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	up, _ := NewTCP(l.Addr().String())
	down, _ := NewTCP(throwaway.FreeAddr(t))
	res := Probe(context.Background(), []Checker{up, down}, time.Second)
	if len(res) != 2 || res[0].Err != nil || res[0].State != "ready" || res[0].Target != "tcp "+l.Addr().String() {
		t.Errorf("up: %+v", res[0])
	}
	if res[1].Err == nil || res[1].State != "connection refused" {
		t.Errorf("down: %+v", res[1])
	}
}

func TestState(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ready"},
		{refused(), "connection refused"},
		{&net.DNSError{Err: "no such host", Name: "db", IsNotFound: true}, "host not found"},
		{context.DeadlineExceeded, "timeout"},
		{retry("LOADING", errors.New("x")), "LOADING"},
		{permanent(errors.New("x"), "y"), "refused for good"},
		{errors.New("something\nodd"), "something odd"},
	} {
		if got := State(tc.err); got != tc.want {
			t.Errorf("State(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
