package throwaway

import (
	"net"
	"strings"
	"testing"
	"time"
)

// leftovers runs body in a subtest (so its cleanups run) and reports the
// process groups it started that are still alive afterwards.
func leftovers(t *testing.T, body func(t *testing.T) *server) {
	t.Helper()
	var s *server
	t.Run("run", func(t *testing.T) { s = body(t) })
	if s == nil {
		t.Fatal("subtest did not return its server")
	}
	if len(s.pgids) == 0 {
		t.Fatal("no process was started")
	}
	for _, g := range s.pgids {
		if groupAlive(g) {
			t.Errorf("process group %d still alive after cleanup", g)
		}
	}
}

func TestPostgresStartStopRestart(t *testing.T) {
	t.Parallel()
	leftovers(t, func(t *testing.T) *server {
		pg := NewPostgres(t, PostgresOptions{Password: "s3cret", Databases: []string{"app"}})
		pg.StartAndWait()
		pg.Stop()
		if c, err := net.DialTimeout("tcp", pg.Addr(), time.Second); err == nil {
			c.Close()
			t.Fatal("port still open after Stop")
		}
		pg.Start()
		pg.WaitReady(30 * time.Second)
		pg.Crash()
		pg.StartAndWait()
		if got := pg.URL("app", "p@ss/word", "app"); !strings.Contains(got, "p%40ss%2Fword@127.0.0.1") {
			t.Errorf("URL does not escape the password: %s", got)
		}
		return &pg.server
	})
}

func TestRedisPreloadAndRestart(t *testing.T) {
	t.Parallel()
	leftovers(t, func(t *testing.T) *server {
		rd := NewRedis(t, RedisOptions{RequirePass: "pw", PreloadKeys: 1000})
		rd.StartAndWait()
		out, err := rd.cli("DBSIZE")
		if err != nil || strings.TrimSpace(out) != "1000" {
			t.Fatalf("DBSIZE = %q, %v; want 1000 (dataset not preloaded)", out, err)
		}
		rd.Stop()
		rd.StartAndWait()
		return &rd.server
	})
}

func TestRabbitMQStartStopRestart(t *testing.T) {
	t.Parallel()
	leftovers(t, func(t *testing.T) *server {
		mq := NewRabbitMQ(t, RabbitOptions{User: "app", Password: "pw"})
		start := time.Now()
		mq.StartAndWait()
		t.Logf("booted in %s", time.Since(start).Round(time.Millisecond))
		pid := mq.running().pid()
		start = time.Now()
		mq.Stop()
		t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
		if groupAlive(pid) {
			t.Error("broker process group alive after Stop")
		}
		mq.StartAndWait()
		return &mq.server
	})
}
