package readiness

import (
	"context"
	"flag"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

// BenchmarkDetection measures how soon Wait notices a dependency that comes
// up while it waits, with the default options (DefaultFreeInterval,
// DefaultBackoff, DefaultAttemptTimeout). Each trial starts Wait, sleeps a random 0–1 s,
// starts a throwaway server, and compares the moment Wait returns with the
// moment an independent probe, polling every millisecond, first got a
// protocol-level answer. It reports the median and 95th percentile of that
// detection latency and the mean number of attempts Wait made.
//
// One trial per b.N; run with at least 20:
//
//	go test -run '^$' -bench Detection -benchtime 20x ./readiness
//
// -args -backoff-max=2s measures another cap (entry's ENTRY_BACKOFF_MAX).
func BenchmarkDetection(b *testing.B) {
	b.Run("postgres", func(b *testing.B) {
		pg := throwaway.NewPostgres(b, throwaway.PostgresOptions{Password: "pw", Databases: []string{"app"}})
		url := pg.URL("postgres", "pw", "app")
		detection(b, pg.Start, pg.Stop, func() Checker { c, _ := NewPostgres(url); return c })
	})
	b.Run("redis", func(b *testing.B) {
		rd := throwaway.NewRedis(b, throwaway.RedisOptions{RequirePass: "pw"})
		url := rd.URL("", "pw", 0)
		detection(b, rd.Start, rd.Stop, func() Checker { c, _ := NewRedis(url); return c })
	})
	b.Run("rabbitmq", func(b *testing.B) {
		mq := throwaway.NewRabbitMQ(b, throwaway.RabbitOptions{User: "app", Password: "pw"})
		url := mq.URL("app", "pw", "/")
		detection(b, mq.Start, mq.Stop, func() Checker { c, _ := NewAMQP(url); return c })
	})
}

var benchBackoffMax = flag.Duration("backoff-max", 0, "BenchmarkDetection: Backoff.Max (0 = DefaultBackoff's)")

type countingChecker struct {
	Checker
	n atomic.Int64
}

func (c *countingChecker) Check(ctx context.Context) error {
	c.n.Add(1)
	return c.Checker.Check(ctx)
}

func detection(b *testing.B, start, stop func(), newChecker func() Checker) {
	var lat []time.Duration
	var attempts int64
	for range b.N {
		l, n := detectOnce(b, start, newChecker)
		stop()
		lat = append(lat, l)
		attempts += n
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(p*float64(len(lat)-1) + 0.5)
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(pct(0.5), "median-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(float64(attempts)/float64(b.N), "attempts/op")
}

func detectOnce(b *testing.B, start func(), newChecker func() Checker) (time.Duration, int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	counted := &countingChecker{Checker: newChecker()}
	waited := make(chan time.Time, 1)
	go func() {
		if err := Wait(ctx, []Checker{counted}, Options{Backoff: Backoff{Max: *benchBackoffMax}}); err != nil {
			b.Error(err)
		}
		waited <- time.Now()
	}()

	firstUp := make(chan time.Time, 1)
	go func() {
		probe := newChecker()
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			err := probe.Check(pctx)
			pcancel()
			if err == nil {
				firstUp <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
		firstUp <- time.Time{}
	}()

	time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
	start()
	done, up := <-waited, <-firstUp
	if up.IsZero() {
		b.Fatal("the probe never saw the server")
	}
	return done.Sub(up), counted.n.Load()
}
