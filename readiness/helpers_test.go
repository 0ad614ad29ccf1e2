package readiness

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fastOptions polls often, so that tests against real servers see every
// state and finish quickly.
func fastOptions(rec *recorder, timeout time.Duration) Options {
	return Options{
		Timeout:          timeout,
		AttemptTimeout:   2 * time.Second,
		Backoff:          Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Factor: 2, Jitter: 0.2},
		ProgressInterval: 5 * time.Second,
		Log:              slog.New(rec),
	}
}

// waitAsync starts Wait in the background; the returned function waits for
// its result.
func waitAsync(c Checker, opt Options) func() error {
	done := make(chan error, 1)
	go func() { done <- Wait(context.Background(), []Checker{c}, opt) }()
	return func() error { return <-done }
}

// permanentWithin runs Wait on c and requires a permanent failure within
// limit whose hint contains hintWant (case-insensitive) and whose text
// contains none of the secrets.
func permanentWithin(t *testing.T, c Checker, limit time.Duration, hintWant string, secrets ...string) *PermanentError {
	t.Helper()
	rec := &recorder{}
	t0 := time.Now()
	err := Wait(context.Background(), []Checker{c}, fastOptions(rec, limit+10*time.Second))
	took := time.Since(t0)
	var pe *PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PermanentError", err)
	}
	if took > limit {
		t.Errorf("permanent failure took %v, want under %v", took, limit)
	}
	if !strings.Contains(strings.ToLower(pe.Hint), strings.ToLower(hintWant)) {
		t.Errorf("hint %q lacks %q", pe.Hint, hintWant)
	}
	noSecrets(t, err.Error()+"\n"+rec.text()+"\n"+c.String(), secrets...)
	t.Logf("%v (after %v)", err, took.Round(time.Millisecond))
	return pe
}

func noSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("secret %q leaked in:\n%s", s, text)
		}
	}
}
