package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/entry-dev/entry/readiness"
	"github.com/jackc/pgx/v5/pgconn"
)

// The lock is a session-level advisory lock: it lives exactly as long as the
// connection that took it, so a replica that dies mid-release frees it for the next
// one. That is also why it does not work through PgBouncer in transaction (or
// statement) pooling mode: consecutive queries may run in different server sessions,
// and the lock stays behind in whichever session took it. Point ENTRY_RELEASE_LOCK at
// the database directly, or at a session-pooling pool.

const (
	defaultAppName       = "entry release"
	defaultCheckInterval = time.Second

	// pollInterval paces pg_try_advisory_lock while another session holds the
	// lock; each wait is jittered by ±50% so replicas do not poll in step.
	pollInterval = 100 * time.Millisecond

	// holderEvery paces the costlier pg_locks/pg_stat_activity query that finds
	// the holder; reportEvery is how often an unchanged holder is reported.
	holderEvery = time.Second
	reportEvery = 10 * time.Second

	// checkTimeout bounds one liveness query. It stays well below the ~25 s the
	// server needs to drop a silent client (serverKeepalive), so after a network
	// partition this replica stops its step before another can take the lock.
	checkTimeout = 5 * time.Second

	// serverKeepalive makes the server end this session, and so free the lock,
	// about 25 s after the client vanishes (node crash, partition) rather than after
	// the kernel's default of two hours. Unix-socket sessions ignore it.
	serverKeepalive = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
)

// LockOptions configures Acquire.
type LockOptions struct {
	Key           int64         // advisory lock key; keys are per database
	Timeout       time.Duration // bound on waiting for the lock; <= 0 waits as long as ctx allows
	AppName       string        // application_name of the lock session, shown in pg_stat_activity
	CheckInterval time.Duration // how often the held lock's session is checked; default 1 s
	Log           *slog.Logger

	// ConnectTimeout bounds establishing the lock's connection, retries
	// included; entry passes its wait timeout. Failures are classified and
	// retried as the wait does (readiness.Postgres.Classify): a refused or
	// reset connection or a server starting up or shutting down is retried
	// with Backoff, a wrong password or a missing database ends at once. The
	// same bound applies again when the connection is lost while this
	// replica waits for the lock. <= 0: bounded by ctx and Timeout only.
	ConnectTimeout time.Duration
	AttemptTimeout time.Duration     // bound on one connection attempt; 0 = readiness.DefaultAttemptTimeout
	Backoff        readiness.Backoff // zero Initial: readiness.DefaultBackoff
}

// Lock is a held session advisory lock and the connection that holds it.
type Lock struct {
	conn   *pgconn.PgConn
	cfg    *pgconn.Config
	pg     *readiness.Postgres // classifies connection errors as the wait does
	opt    LockOptions
	key    int64
	target string // user@host:port/db, safe to print
	log    *slog.Logger

	lost    chan struct{}
	lostErr error // written before lost is closed
	stop    chan struct{}
	done    chan struct{}

	release    sync.Once
	releaseErr error
}

// Acquire connects to connString, a pgx-ready postgres URL, and takes the session
// advisory lock opt.Key, waiting at most opt.Timeout. While it waits it reports the
// holder (application_name, pid, client address, session start) when the wait
// begins, when the holder changes, and every 10 s. On timeout the error wraps
// ErrLockTimeout. Errors never contain the password.
//
// Acquire polls pg_try_advisory_lock rather than blocking in pg_advisory_lock:
// the holder query runs on the same connection between polls, so a waiting replica
// uses one connection (migrate needs its own, and max_connections is shared), a
// cancelled wait leaves nothing queued on the server, and the server log stays free
// of lock_timeout errors. The price is a handoff delay of up to one poll interval
// (50 ms on average with one waiter) and no first-come order, which does not matter
// when every replica runs the same steps.
func Acquire(ctx context.Context, connString string, opt LockOptions) (*Lock, error) {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pg, err := readiness.NewPostgres(connString)
	if err != nil {
		// Its errors are built to be printed: they never quote the string.
		return nil, fmt.Errorf("release lock: %w", err)
	}
	cfg := pg.Config()
	appName := opt.AppName
	if appName == "" {
		appName = defaultAppName
	}
	cfg.RuntimeParams["application_name"] = appName
	d := &net.Dialer{
		Timeout:         cfg.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	cfg.DialFunc = d.DialContext

	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = readiness.DefaultAttemptTimeout
	}
	if opt.Backoff.Initial <= 0 {
		opt.Backoff = readiness.DefaultBackoff
	}
	l := &Lock{
		cfg:    cfg,
		pg:     pg,
		opt:    opt,
		key:    opt.Key,
		target: fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database),
		log:    log,
		lost:   make(chan struct{}),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}

	waitCtx := ctx
	if opt.Timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeoutCause(ctx, opt.Timeout, ErrLockTimeout)
		defer cancel()
	}

	if err := l.connect(waitCtx, false); err != nil {
		return nil, err
	}
	if err := l.wait(waitCtx, opt.Timeout); err != nil {
		if l.conn != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			l.conn.Close(closeCtx) // ends the session: frees the lock if the server granted it as we gave up
		}
		return nil, err
	}

	every := opt.CheckInterval
	if every <= 0 {
		every = defaultCheckInterval
	}
	go l.watch(every)
	return l, nil
}

// connect establishes the lock's connection, retrying what the wait would
// retry within opt.ConnectTimeout. After a lost connection (again is true) a
// failure to get it back wraps ErrLockLost; a first connection that never
// comes wraps ErrUnavailable.
func (l *Lock) connect(ctx context.Context, again bool) error {
	cctx := ctx
	if l.opt.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, l.opt.ConnectTimeout)
		defer cancel()
	}
	start, state := time.Now(), ""
	var last error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(cctx, l.opt.AttemptTimeout)
		conn, err := pgconn.ConnectConfig(actx, l.cfg)
		cancel()
		if err == nil {
			l.conn = conn
			if _, err := conn.Exec(cctx, serverKeepalive).ReadAll(); err != nil {
				l.log.Warn("release lock: cannot set server-side keepalive", "target", l.target, "err", l.pg.Classify(err))
			}
			if attempt > 1 {
				l.log.Info("release lock connected", "target", l.target, "attempts", attempt,
					"after", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if cctx.Err() != nil && last != nil {
			break // cut by the deadline: the previous failure says more
		}
		err = l.pg.Classify(err) // classified before any of its text is used
		if pe := (*readiness.PermanentError)(nil); errors.As(err, &pe) {
			return fmt.Errorf("release lock %s: connect: %w", l.target, err)
		}
		last = err
		if cctx.Err() != nil {
			break
		}
		if s := readiness.State(err); s != state {
			state = s
			l.log.Info("release lock: cannot connect yet, retrying", "target", l.target, "state", s, "attempt", attempt, "err", err)
		}
		select {
		case <-cctx.Done():
		case <-time.After(l.opt.Backoff.Delay(attempt, rand.Float64())):
		}
		if cctx.Err() != nil {
			break
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrLockTimeout):
		return fmt.Errorf("release lock %s: %w: no connection after %s: %w", l.target, ErrLockTimeout, took, last)
	case cause != nil:
		return fmt.Errorf("release lock %s: connecting: %w", l.target, cause)
	case again:
		return fmt.Errorf("release lock %s: %w while waiting, and not back after %s: %w", l.target, ErrLockLost, took, last)
	}
	return fmt.Errorf("release lock %s: %w: no connection after %s: %w", l.target, ErrUnavailable, took, last)
}

// reconnect replaces a connection lost while waiting for the lock (which it
// therefore did not hold): the wait goes on on a new session.
func (l *Lock) reconnect(ctx context.Context, err error) error {
	l.log.Warn("release lock connection lost while waiting, reconnecting", "target", l.target, "err", err)
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	l.conn.Close(closeCtx)
	cancel()
	l.conn = nil
	return l.connect(ctx, true)
}

// holder is the session holding the lock, as pg_stat_activity shows it. Fields
// other than pid are empty when our role may not see the other session's details.
type holder struct {
	pid   int
	app   string
	addr  string
	since time.Time
}

func (h holder) attrs() []any {
	if h.pid == 0 {
		return []any{"holder", "unknown"}
	}
	a := []any{"holder_pid", h.pid, "holder_app", h.app, "holder_addr", h.addr}
	if !h.since.IsZero() {
		a = append(a, "holder_since", h.since.UTC().Format(time.RFC3339))
	}
	return a
}

func (h holder) String() string {
	if h.pid == 0 {
		return "unknown"
	}
	return fmt.Sprintf("pid %d (%q from %s)", h.pid, h.app, h.addr)
}

func (l *Lock) wait(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	var last holder
	var checked, reported time.Time
	for {
		row, err := l.row(ctx, fmt.Sprintf("SELECT pg_try_advisory_lock(%d)", l.key))
		if err != nil {
			if err := l.retryable(ctx, err); err != nil {
				return l.waitErr(ctx, last, err)
			}
			if err := l.reconnect(ctx, l.pg.Classify(err)); err != nil {
				return err
			}
			continue
		}
		if got := len(row) == 1 && string(row[0]) == "t"; got {
			l.log.Info("release lock acquired", "target", l.target, "key", l.key, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Since(checked) >= holderEvery {
			h, err := l.holder(ctx)
			if err != nil {
				if err := l.retryable(ctx, err); err != nil {
					return l.waitErr(ctx, last, err)
				}
				if err := l.reconnect(ctx, l.pg.Classify(err)); err != nil {
					return err
				}
				continue
			}
			checked = time.Now()
			var msg string
			switch {
			case reported.IsZero():
				msg = "release lock busy, waiting"
			case h.pid != 0 && h.pid != last.pid:
				msg = "release lock holder changed, waiting"
			case time.Since(reported) >= reportEvery:
				msg = "release lock still busy, waiting"
			}
			if msg != "" {
				attrs := append([]any{"target", l.target, "key", l.key}, h.attrs()...)
				attrs = append(attrs, "waited", time.Since(start).Round(time.Second), "timeout", timeout)
				l.log.Info(msg, attrs...)
				reported = checked
			}
			if h.pid != 0 {
				last = h
			}
		}

		select {
		case <-ctx.Done():
			return l.waitErr(ctx, last, ctx.Err())
		case <-time.After(pollInterval/2 + rand.N(pollInterval)):
		}
	}
}

// holder finds who holds the lock. pg_locks shows a bigint advisory key as its
// high and low 32 bits in classid and objid, with objsubid 1.
func (l *Lock) holder(ctx context.Context) (holder, error) {
	hi, lo := int64(uint64(l.key)>>32), int64(uint32(l.key))
	row, err := l.row(ctx, fmt.Sprintf(`
SELECT a.pid, coalesce(a.application_name, ''),
       coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END, 'unknown'),
       coalesce((extract(epoch FROM a.backend_start) * 1000)::bigint, 0)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = %d AND l.objid::bigint = %d AND l.objsubid = 1
ORDER BY a.backend_start
LIMIT 1`, hi, lo))
	if err != nil || len(row) != 4 {
		return holder{}, err // no row: released between our two queries
	}
	var h holder
	h.pid, _ = strconv.Atoi(string(row[0]))
	h.app, h.addr = string(row[1]), string(row[2])
	if ms, _ := strconv.ParseInt(string(row[3]), 10, 64); ms > 0 {
		h.since = time.UnixMilli(ms)
	}
	return h, nil
}

// row runs sql and returns the first row of its first result as text, nil when
// there is none. The only values formatted into sql are integers: nothing to quote.
func (l *Lock) row(ctx context.Context, sql string) ([][]byte, error) {
	res, err := l.conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return nil, nil
	}
	return res[0].Rows[0], nil
}

// retryable returns nil when err, from a query while waiting for the lock,
// is a lost connection worth replacing, and otherwise the error to report.
func (l *Lock) retryable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	// As in the wait, whatever is not refused for good is retried: a
	// broken connection, a server shutting down or restarting.
	cerr := l.pg.Classify(err)
	if pe := (*readiness.PermanentError)(nil); errors.As(cerr, &pe) {
		return cerr
	}
	return nil
}

func (l *Lock) waitErr(ctx context.Context, last holder, err error) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrLockTimeout):
		return fmt.Errorf("release lock %s (key %d): %w, held by %s", l.target, l.key, ErrLockTimeout, last)
	case cause != nil:
		return fmt.Errorf("release lock %s: waiting: %w", l.target, cause)
	}
	return l.fail("waiting", err)
}

// watch runs a short query every interval on the otherwise idle lock session, so
// a terminated session or broken connection is noticed within about one interval.
func (l *Lock) watch(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		_, err := l.conn.Exec(ctx, "SELECT 1").ReadAll()
		cancel()
		if err != nil {
			err = l.pg.Classify(err) // for its text: one line, from the error's structure
			l.lostErr = fmt.Errorf("%w (%s, key %d): %w", ErrLockLost, l.target, l.key, err)
			l.log.Error("release lock lost", "target", l.target, "key", l.key, "err", err)
			close(l.lost)
			return
		}
	}
}

// Lost is closed when the lock's session is gone (terminated, server restart,
// network). Steps running under the lock must then stop.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// cause says why the lock was lost; call it only after Lost is closed.
func (l *Lock) cause() error { return l.lostErr }

// Release unlocks and closes the session. Closing the session frees the lock even
// when the unlock itself fails, so an error here is for the log only. After the
// lock was lost, Release only closes the connection. Calls after the first return
// the first one's result.
func (l *Lock) Release(ctx context.Context) error {
	l.release.Do(func() { l.releaseErr = l.unlock(ctx) })
	return l.releaseErr
}

func (l *Lock) unlock(ctx context.Context) error {
	close(l.stop)
	<-l.done
	defer l.conn.Close(ctx)
	select {
	case <-l.lost:
		return nil
	default:
	}
	row, err := l.row(ctx, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", l.key))
	if err != nil {
		return l.fail("unlock", err)
	}
	if held := len(row) == 1 && string(row[0]) == "t"; !held {
		return l.fail("unlock", errors.New("this session did not hold the lock"))
	}
	l.log.Debug("release lock released", "target", l.target, "key", l.key)
	return nil
}

func (l *Lock) fail(op string, err error) error {
	return fmt.Errorf("release lock %s: %s: %w", l.target, op, l.pg.Classify(err))
}
