package readiness

import (
	"bufio"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

func mustRedis(t *testing.T, url string) *Redis {
	t.Helper()
	c, err := NewRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRedisServer(t *testing.T) {
	t.Parallel()
	const pass = "Redis-s3cret"
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{
		RequirePass: pass,
		Args: []string{
			"--user", "limited", "on", ">Limited-pw", "~*", "+@all", "-ping",
			"--user", "off-user", "off", ">Off-pw", "+@all",
		},
	})

	ok := t.Run("started after Wait begins", func(t *testing.T) {
		c := mustRedis(t, rd.URL("", pass, 0))
		rec := &recorder{}
		wait := waitAsync(c, fastOptions(rec, 20*time.Second))
		time.Sleep(100 * time.Millisecond)
		rd.Start()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if st := rec.states(); len(st) == 0 || st[0] != "connection refused" {
			t.Errorf("states = %q", st)
		}
		noSecrets(t, rec.text(), pass)
	})
	if !ok {
		t.FailNow()
	}
	t.Run("no password in the URL", func(t *testing.T) {
		permanentWithin(t, mustRedis(t, rd.URL("", "", 0)), time.Second, "requires a password")
	})
	t.Run("wrong password", func(t *testing.T) {
		permanentWithin(t, mustRedis(t, rd.URL("", "Wrong-pw-1", 0)), time.Second, "wrong password", "Wrong-pw-1", pass)
	})
	t.Run("password written as user name", func(t *testing.T) {
		permanentWithin(t, mustRedis(t, "redis://"+pass+"@"+rd.Addr()+"/0"), time.Second, "redis://:PASSWORD@host", pass)
	})
	t.Run("disabled ACL user", func(t *testing.T) {
		permanentWithin(t, mustRedis(t, rd.URL("off-user", "Off-pw", 0)), time.Second, "disabled", "Off-pw")
	})
	t.Run("database out of range", func(t *testing.T) {
		permanentWithin(t, mustRedis(t, rd.URL("", pass, 99)), time.Second, "database 99", pass)
	})
	t.Run("ready states", func(t *testing.T) {
		for _, url := range []string{
			rd.URL("", pass, 3),                            // AUTH pass + SELECT
			rd.URL("default", pass, 0),                     // AUTH user pass
			rd.URL("limited", "Limited-pw", 0),             // NOPERM on PING: up
			"redis://:" + pass + "@" + rd.Addr() + "?db=2", // db as a query parameter
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := mustRedis(t, url).Check(ctx)
			cancel()
			if err != nil {
				t.Errorf("%s: %v", strings.ReplaceAll(url, pass, "…"), err)
			}
		}
	})
}

func TestRedisServerWithoutPassword(t *testing.T) {
	t.Parallel()
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{})
	rd.StartAndWait()
	permanentWithin(t, mustRedis(t, rd.URL("", "Unneeded-pw", 0)), time.Second, "server has none", "Unneeded-pw")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := mustRedis(t, rd.URL("", "", 0)).Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRedisLoadingIsWaitedThrough(t *testing.T) {
	t.Parallel()
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{RequirePass: "pw", PreloadKeys: 8000, KeyLoadDelay: 50})
	rec := &recorder{}
	wait := waitAsync(mustRedis(t, rd.URL("", "pw", 0)), fastOptions(rec, 60*time.Second))
	rd.Start()
	t0 := time.Now()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	st := rec.states()
	t.Logf("ready %v after start; states %q", time.Since(t0).Round(time.Millisecond), st)
	if !slices.Contains(st, "LOADING") {
		t.Errorf("LOADING was never seen: states %q", st)
	}
}

func TestRedisClassify(t *testing.T) {
	anon := mustRedis(t, "redis://db:6379/1")
	authed := mustRedis(t, "redis://:pw@db:6379/1")
	for _, tc := range []struct {
		r         *Redis
		cmd, msg  string
		ready     bool
		permanent bool
		state     string
	}{
		{anon, "PING", "LOADING Redis is loading the dataset in memory", false, false, "LOADING"},
		{anon, "PING", "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", false, false, "MASTERDOWN"},
		{anon, "PING", "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", false, false, "BUSY"},
		{anon, "PING", "TRYAGAIN", false, false, "TRYAGAIN"},
		{anon, "PING", "ERR max number of clients reached", false, false, "max number of clients reached"},
		{anon, "PING", "NOPERM this user has no permissions to run the 'ping' command", true, false, ""},
		{anon, "PING", "NOAUTH Authentication required.", false, true, ""},
		{anon, "SELECT", "NOAUTH Authentication required.", false, true, ""},
		{authed, "AUTH", "WRONGPASS invalid username-password pair or user is disabled.", false, true, ""},
		{authed, "AUTH", "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", false, true, ""},
		{authed, "AUTH", "ERR Client sent AUTH, but no password is set", false, true, ""},
		{authed, "AUTH", "ERR invalid password", false, true, ""},
		{authed, "SELECT", "ERR DB index is out of range", false, true, ""},
		{anon, "PING", "DENIED Redis is running in protected mode", false, true, ""},
	} {
		err := tc.r.classify(tc.cmd, tc.msg)
		var pe *PermanentError
		switch {
		case tc.ready && err != nil:
			t.Errorf("%s %q: %v, want ready", tc.cmd, tc.msg, err)
		case !tc.ready && err == nil:
			t.Errorf("%s %q: ready, want an error", tc.cmd, tc.msg)
		case err != nil && errors.As(err, &pe) != tc.permanent:
			t.Errorf("%s %q: permanent = %v", tc.cmd, tc.msg, !tc.permanent)
		case err != nil && !tc.permanent && State(err) != tc.state:
			t.Errorf("%s %q: state %q, want %q", tc.cmd, tc.msg, State(err), tc.state)
		}
	}
}

func TestNewRedis(t *testing.T) {
	for _, tc := range []struct {
		in, target string
		auth       bool
		user, pass string
		db         int
		tls        bool
	}{
		{"redis://redis:6379/0", "redis redis:6379/0", false, "", "", 0, false},
		{"redis://redis", "redis redis:6379/0", false, "", "", 0, false},
		{"redis://:pw@redis:6380/2", "redis redis:6380/2", true, "", "pw", 2, false},
		{"redis://app:pw@redis/1", "redis app@redis:6379/1", true, "app", "pw", 1, false},
		{"redis://pw@redis", "redis xxxxx@redis:6379/0", true, "pw", "", 0, false},
		{"redis://[::1]:7000?db=4", "redis [::1]:7000/4", false, "", "", 4, false},
		{"rediss://:p%40ss@cache:6379/0?ssl_cert_reqs=none", "rediss cache:6379/0", true, "", "p@ss", 0, true},
		{"redis://", "redis localhost:6379/0", false, "", "", 0, false},
	} {
		r, err := NewRedis(tc.in)
		if err != nil {
			t.Errorf("NewRedis(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.target || r.auth != tc.auth || r.user != tc.user || r.pass != tc.pass || r.db != tc.db || (r.tls != nil) != tc.tls {
			t.Errorf("NewRedis(%q) = %+v", tc.in, r)
		}
	}
	for _, in := range []string{
		"http://redis:6379", "redis://redis:0", "redis://redis:99999", "redis://redis/x", "redis://redis/-1",
		"redis://:Secret-pw@redis/x", "redis://:Secret-pw@redis:port", "redis://:Secret/pw@redis",
		"rediss://redis?ssl_cert_reqs=maybe", "unix:///run/redis.sock",
	} {
		_, err := NewRedis(in)
		if err == nil {
			t.Errorf("NewRedis(%q) accepted", in)
			continue
		}
		noSecrets(t, err.Error(), "Secret-pw", "Secret/pw")
	}
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		in     string
		msg    string
		isErr  bool
		hasErr bool
	}{
		{"+PONG\r\n", "PONG", false, false},
		{"-ERR x y\r\n", "ERR x y", true, false},
		{":12\r\n", "12", false, false},
		{"$4\r\nPONG\r\n", "PONG", false, false},
		{"$-1\r\n", "", false, false},
		{"*2\r\n$1\r\na\r\n:1\r\n", "", false, false},
		{"HTTP/1.1 400 Bad Request\r\n", "", false, true},
		{"+PONG\n", "", false, true},
		{"$999999999\r\n", "", false, true},
		{"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "", false, true},
		{"", "", false, true},
	} {
		msg, isErr, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), 16))
		if msg != tc.msg || isErr != tc.isErr || (err != nil) != tc.hasErr {
			t.Errorf("readReply(%q) = %q, %v, %v", tc.in, msg, isErr, err)
		}
	}
	long := "+" + strings.Repeat("x", maxReplyLine+10) + "\r\n"
	if _, _, err := readReply(bufio.NewReaderSize(strings.NewReader(long), 16)); err == nil {
		t.Error("over-long line accepted")
	}
}
