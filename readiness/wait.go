package readiness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Checker probes one dependency once.
//
// Check returns nil when the dependency is ready, a *PermanentError when
// waiting cannot help, and any other error when it is not ready yet. It must
// honour ctx (deadline and cancellation) and release what it opens.
//
// String names the target for logs. It must never contain a password.
type Checker interface {
	Check(ctx context.Context) error
	String() string
}

// minAttemptTimeouter is implemented by checkers whose single attempt can
// legitimately take longer than a generic bound: an Elasticsearch health URL
// that makes the server wait, an AMQP login whose rejection arrives after the
// broker's silent-close delay. Wait and Probe give such an attempt at least
// this long.
type minAttemptTimeouter interface {
	MinAttemptTimeout() time.Duration
}

// Defaults used for zero fields of Options.
const (
	DefaultAttemptTimeout   = 5 * time.Second
	DefaultProgressInterval = 10 * time.Second
)

// DefaultBackoff fills zero fields of Options.Backoff: after answers that
// say "not yet" (57P03, LOADING, 503) and after timeouts, the delays are
// 100ms, 200ms, 400ms, 800ms, then 1s, each ±20% (capped at 1s), so that a
// struggling server gets at most about one probe a second per dependency
// and replicas polling one restarting database spread out instead of
// arriving together. See Schedule for refused connections.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Factor: 2, Jitter: 0.2}

// DefaultFreeInterval is the pause after a failure that cost the dependency
// nothing (see Free). Its ±20% jitter is Backoff.Jitter's.
const DefaultFreeInterval = 20 * time.Millisecond

// Backoff is a capped exponential backoff with jitter.
type Backoff struct {
	Initial time.Duration // the first delay, Delay(1)
	Max     time.Duration // upper bound of any delay, jitter included; 0 = none
	Factor  float64       // growth per attempt; values below 1 count as 1
	Jitter  float64       // fraction, 0..1: each delay is scaled by a random factor in [1-Jitter, 1+Jitter)
}

// Delay returns the pause before attempt number attempt+1, given that
// attempt attempts have been made: 0 for attempt 0 (the first attempt is
// immediate), then min(Initial·Factor^(attempt-1), Max) scaled by
// 1+Jitter·(2·rnd-1) and capped at Max again. rnd is a number in [0,1).
// Delay is pure: the caller supplies the randomness.
func (b Backoff) Delay(attempt int, rnd float64) time.Duration {
	if attempt <= 0 || b.Initial <= 0 {
		return 0
	}
	f := b.Factor
	if f < 1 || math.IsNaN(f) {
		f = 1
	}
	limit := float64(math.MaxInt64)
	if b.Max > 0 {
		limit = float64(b.Max)
	}
	d := math.Min(float64(b.Initial)*math.Pow(f, float64(attempt-1)), limit)
	if j := b.Jitter; j > 0 && !math.IsNaN(rnd) {
		j = math.Min(j, 1)
		rnd = math.Min(math.Max(rnd, 0), 1)
		d *= 1 + j*(2*rnd-1)
	}
	d = math.Min(d, limit)
	if d >= float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// Options tunes Wait. The zero value is usable.
type Options struct {
	Timeout          time.Duration // overall deadline for Wait; 0 = none
	AttemptTimeout   time.Duration // bound on one Check (dial+handshake+query); 0 = DefaultAttemptTimeout
	Backoff          Backoff       // zero fields take DefaultBackoff's values
	FreeInterval     time.Duration // pause after a free failure (see Free); 0 = DefaultFreeInterval
	ProgressInterval time.Duration // period of "still waiting" lines per dependency; 0 = DefaultProgressInterval, <0 = none
	Log              *slog.Logger  // nil = discard

	Now   func() time.Time                     // nil = time.Now
	After func(time.Duration) <-chan time.Time // nil = time.After
	Rand  func() float64                       // nil = math/rand/v2
}

func (o Options) withDefaults() Options {
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Backoff.Initial <= 0 {
		o.Backoff.Initial = DefaultBackoff.Initial
	}
	if o.Backoff.Max <= 0 {
		o.Backoff.Max = DefaultBackoff.Max
	}
	if o.Backoff.Factor == 0 {
		o.Backoff.Factor = DefaultBackoff.Factor
	}
	if o.Backoff.Jitter == 0 {
		o.Backoff.Jitter = DefaultBackoff.Jitter
	}
	if o.FreeInterval <= 0 {
		o.FreeInterval = DefaultFreeInterval
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return o
}

// depState is what one dependency's goroutine leaves behind for the summary.
type depState struct {
	ready    bool
	attempts int
	lastErr  error
}

// Wait probes every checker in parallel until all are ready. Each dependency
// is tried at once, then again after the pauses of Schedule. It returns:
//   - nil when every dependency answered;
//   - the first permanent failure (errors.As *PermanentError), prefixed with
//     the dependency's name; the other probes are cancelled;
//   - after Options.Timeout (or ctx's own deadline), an error wrapping
//     ErrTimeout that names each dependency still not ready and its last error;
//   - when ctx is cancelled, promptly, an error wrapping ctx.Err().
//
// It logs one line when a dependency's state changes (first failure, then
// e.g. "connection refused" → "57P03 the database system is starting up"),
// a "still waiting" line every ProgressInterval, a line when it becomes
// ready, and a summary when all are ready. Never one line per attempt.
func Wait(ctx context.Context, checks []Checker, opt Options) error {
	o := opt.withDefaults()
	start := o.Now()
	if len(checks) == 0 {
		return nil
	}
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	states := make([]depState, len(checks))
	g, gctx := errgroup.WithContext(wctx)
	for i, c := range checks {
		g.Go(func() error { return o.waitOne(gctx, c, &states[i], start) })
	}
	err := g.Wait()
	elapsed := o.Now().Sub(start).Round(time.Millisecond)
	if err == nil {
		o.Log.Info("all dependencies ready", "count", len(checks), "elapsed", elapsed)
		return nil
	}
	if pe := (*PermanentError)(nil); errors.As(err, &pe) {
		return err
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("wait interrupted after %s: %w", elapsed, ctx.Err())
	}
	var pending []string
	for i, st := range states {
		if st.ready {
			continue
		}
		last := "no attempt finished"
		if st.lastErr != nil {
			last = "last error: " + st.lastErr.Error()
		}
		pending = append(pending, fmt.Sprintf("%s (%d attempts, %s)", checks[i], st.attempts, last))
	}
	return fmt.Errorf("%w after %s; not ready: %s", ErrTimeout, elapsed, strings.Join(pending, "; "))
}

func (o *Options) waitOne(ctx context.Context, c Checker, st *depState, start time.Time) error {
	name := c.String()
	log := o.Log.With("dependency", name)
	state := ""
	nextProgress := start.Add(o.ProgressInterval)
	sched := Schedule{Free: o.FreeInterval, Backoff: o.Backoff}
	answered := 0 // consecutive failures that were not free, the last included
	for attempt := 1; ; attempt++ {
		st.attempts = attempt
		err := attemptOnce(ctx, c, o.AttemptTimeout, o.After)
		if ctx.Err() != nil {
			// Cut short by the deadline, a cancellation or another
			// dependency's permanent failure: not this attempt's verdict.
			return ctx.Err()
		}
		if err == nil {
			st.ready = true
			log.Info("dependency ready", "after", o.Now().Sub(start).Round(time.Millisecond), "attempts", attempt)
			return nil
		}
		st.lastErr = err
		if pe := (*PermanentError)(nil); errors.As(err, &pe) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if s := State(err); s != state {
			state = s
			log.Info("dependency not ready", "state", s, "attempt", attempt, "error", err.Error())
		}
		if Free(err) {
			answered = 0
		} else {
			answered++
		}
		wake := o.Now().Add(sched.Pause(answered, o.Rand()))
		for ctx.Err() == nil {
			now := o.Now()
			d := wake.Sub(now)
			if d <= 0 {
				break
			}
			if o.ProgressInterval > 0 {
				if !now.Before(nextProgress) {
					log.Info("still waiting", "elapsed", now.Sub(start).Round(time.Millisecond),
						"attempts", attempt, "state", state, "error", err.Error())
					for !now.Before(nextProgress) {
						nextProgress = nextProgress.Add(o.ProgressInterval)
					}
				}
				d = min(d, nextProgress.Sub(now))
			}
			select {
			case <-ctx.Done():
			case <-o.After(d):
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// checkGrace is how long an attempt whose deadline passed may still take to
// report its own, more precise, error before it is abandoned.
const checkGrace = 100 * time.Millisecond

// attemptOnce runs one Check bounded by timeout (raised to the checker's
// MinAttemptTimeout). It returns as soon as ctx is cancelled, even if the
// checker ignores its context: the abandoned Check finishes in the background.
func attemptOnce(ctx context.Context, c Checker, timeout time.Duration, after func(time.Duration) <-chan time.Time) error {
	if m, ok := c.(minAttemptTimeouter); ok {
		timeout = max(timeout, m.MinAttemptTimeout())
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Check(actx) }()
	select {
	case err := <-done:
		return err
	case <-actx.Done():
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-after(checkGrace):
		return retry("timeout", fmt.Errorf("no answer within %s: %w", timeout, context.DeadlineExceeded))
	}
}

// Result is the outcome of one probe.
type Result struct {
	Target  string        // the checker's redacted name
	Err     error         // nil when ready
	State   string        // State(Err): "ready", "connection refused", …
	Latency time.Duration // how long the probe took
}

// Probe runs one Check of each checker, in parallel, without retries (for
// `entry check`). Each probe is bounded by attemptTimeout (0 =
// DefaultAttemptTimeout, raised to a checker's own minimum).
func Probe(ctx context.Context, checks []Checker, attemptTimeout time.Duration) []Result {
	if attemptTimeout <= 0 {
		attemptTimeout = DefaultAttemptTimeout
	}
	res := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			t0 := time.Now()
			err := attemptOnce(ctx, c, attemptTimeout, time.After)
			res[i] = Result{Target: c.String(), Err: err, State: State(err), Latency: time.Since(t0)}
		})
	}
	wg.Wait()
	return res
}
