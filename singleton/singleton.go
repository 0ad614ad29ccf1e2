// Package singleton decides which replica runs each singleton process type
// (ENTRY_SINGLETON, e.g. celery beat): the one whose session holds the type's
// Postgres advisory lock. It feeds supervise's group with Leases: a grant
// when the lock is taken, a revoke when the lock's session may be gone, and
// it gives the lock up only once the group says the type's processes have
// exited.
//
// It lives apart from package release because its lock is the opposite of
// the release lock: held for the whole life of the replica rather than for a
// few steps, taken by one replica of many that wait in standby forever, and
// given up on the group's word rather than when a step returns.
package singleton

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/supervise"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"
)

// Timings. The safety argument (README, "Fleet") rests on three figures:
//
//   - Detect: the holder declares its lock lost when no query it sent
//     since Detect ago has been answered. The server received the last
//     answered query after it was sent, so the holder decides at most Detect
//     after the last packet the server got from it;
//   - the grace: the holder then stops the process at once, SIGKILL after
//     the grace, and waits for it (and for what it left behind, which gets
//     the grace again) before it lets the session go;
//   - Drop: the server ends a silent session, freeing the lock, no earlier
//     than Drop after the last packet it got (keepalives, tcp_user_timeout,
//     set on the session). Drop = Detect + 2·grace + Margin.
//
// So a holder cut off from the database has stopped its process Margin
// before the server frees the lock for another replica.
const (
	Poll   = time.Second     // pg_try_advisory_lock / liveness pace, jittered by ±25%
	Detect = 5 * time.Second // see above
	Margin = 10 * time.Second
	// minDrop keeps a short grace from making the session fragile on a
	// network that stalls for a few seconds.
	minDrop = 20 * time.Second
)

// DropAfter is the server-side bound for a process grace of grace.
func DropAfter(grace time.Duration) time.Duration {
	return max(minDrop, Detect+2*grace+Margin)
}

// Keys returns the two int4 keys of typ's lock: the release lock key folded
// to 32 bits, and the FNV-1a hash of the type. The two-key form of the
// advisory lock functions lives in a space of its own (objsubid 2 in
// pg_locks), apart from the bigint form the release lock uses (objsubid 1),
// so they never collide with it; two types collide only if their hashes do.
func Keys(releaseKey int64, typ string) (int32, int32) {
	h := fnv.New32a()
	h.Write([]byte(typ))
	return int32(uint32(uint64(releaseKey)>>32) ^ uint32(releaseKey)), int32(h.Sum32())
}

// Options configures Run.
type Options struct {
	DSN     string // pgx-ready connection string, with credentials
	Key     int64  // the release lock key
	Types   []string
	Grace   time.Duration // the processes' stop timeout
	AppName string        // application_name of the lock session
	Backoff readiness.Backoff
	// AttemptTimeout bounds one connection attempt.
	AttemptTimeout time.Duration
	Log            *slog.Logger
}

type held struct {
	typ  string
	done chan struct{}
}

type manager struct {
	opt    Options
	pg     *readiness.Postgres
	cfg    *pgconn.Config
	target string
	log    *slog.Logger
	leases chan<- supervise.Lease

	conn     *pgconn.PgConn
	inflight chan result // a query that outlived its deadline, still running
	sentOK   time.Time   // when the last answered query was sent
	held     map[string]*held
	finished chan *held      // a held type whose processes are gone
	standby  map[string]bool // reported in standby since the last hold
	// retired types were given back by the group without a revoke: it is
	// stopping, and taking the lock again would only keep it from a replica
	// that will run the process.
	retired map[string]bool
}

type result struct {
	row [][]byte
	err error
}

var errSilent = errors.New("no answer in time")

// Run manages the locks until ctx ends, sending Leases. Call it once the
// group reads leases, and end ctx only once the group has returned: the
// connection, and so every lock, is closed then. It returns an error only
// for a connection string it cannot use.
func Run(ctx context.Context, opt Options, leases chan<- supervise.Lease) error {
	pg, err := readiness.NewPostgres(opt.DSN)
	if err != nil {
		return fmt.Errorf("singleton lock: %w", err)
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Backoff.Initial <= 0 {
		opt.Backoff = readiness.DefaultBackoff
	}
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = readiness.DefaultAttemptTimeout
	}
	drop := DropAfter(opt.Grace)
	cfg := pg.Config()
	cfg.RuntimeParams["application_name"] = cmpOr(opt.AppName, "entry singleton")
	// The client's own keepalives and user timeout are no shorter than the
	// server's: nothing on this side may end the session (and free the
	// lock) before the process has stopped; the liveness query decides.
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: drop / 2, Interval: drop / 6, Count: 3},
		Control: func(network, address string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(drop.Milliseconds()))
			})
			return errors.Join(err, serr)
		},
	}
	cfg.DialFunc = d.DialContext
	m := &manager{
		opt: opt, pg: pg, cfg: cfg, target: pg.String(), log: log, leases: leases,
		held: map[string]*held{}, standby: map[string]bool{}, retired: map[string]bool{}, finished: make(chan *held, len(opt.Types)),
	}
	m.loop(ctx, drop)
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (m *manager) loop(ctx context.Context, drop time.Duration) {
	defer m.close()
	m.log.Info("singleton locks: polling", "types", strings.Join(m.opt.Types, ","), "target", m.target,
		"every", Poll, "detect", Detect, "server_drop", drop)
	pause := time.Duration(0) // the first poll at once, and the first after a reconnection
	for {
		if m.conn == nil {
			if !m.connect(ctx, drop) {
				return
			}
			pause = 0
		}
		// Between polls, give up what the group is done with.
		wait := time.After(pause)
		pause = Poll*3/4 + rand.N(Poll/2)
	idle:
		for {
			select {
			case <-ctx.Done():
				// The group has returned: every process is gone, and closing the
				// session gives up every lock it still holds.
				for _, typ := range slices.Sorted(maps.Keys(m.held)) {
					m.log.Info("singleton lock released", "type", typ, "by", "closing the session")
				}
				return
			case <-wait:
				break idle
			case h := <-m.finished:
				if m.held[h.typ] == h && !m.unlock(h.typ) {
					break idle
				}
			}
		}
		if m.conn != nil {
			m.poll(ctx)
		}
	}
}

// connect (re)establishes the session, with backoff, until ctx ends.
func (m *manager) connect(ctx context.Context, drop time.Duration) bool {
	state := ""
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, m.opt.AttemptTimeout)
		conn, err := pgconn.ConnectConfig(actx, m.cfg)
		cancel()
		if err == nil {
			for _, set := range []string{
				// Rounded up: idle + count·interval is never below drop.
				fmt.Sprintf("SET tcp_keepalives_idle = %d", ceilSeconds(drop/2)),
				fmt.Sprintf("SET tcp_keepalives_interval = %d", ceilSeconds(drop/6)),
				"SET tcp_keepalives_count = 3",
				fmt.Sprintf("SET tcp_user_timeout = %d", drop.Milliseconds()),
			} {
				// Best effort: without them the server keeps a silent session
				// longer (the kernel's two hours), which delays a takeover but
				// never hastens it.
				if _, err := conn.Exec(ctx, set).ReadAll(); err != nil {
					m.log.Warn("singleton lock: cannot set a server-side timeout", "target", m.target, "err", m.pg.Classify(err))
				}
			}
			m.conn, m.sentOK = conn, time.Now()
			if attempt > 1 {
				m.log.Info("singleton lock connected", "target", m.target, "attempts", attempt)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		err = m.pg.Classify(err)
		if s := readiness.State(err); s != state {
			state = s
			m.log.Warn("singleton lock: cannot connect, retrying", "target", m.target, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(m.opt.Backoff.Delay(attempt, rand.Float64())):
		}
	}
}

// poll tries the locks of the types not held, on the query that also proves
// the held ones' session alive.
func (m *manager) poll(ctx context.Context) {
	var want []string
	var cols []string
	for _, typ := range m.opt.Types {
		if _, ok := m.held[typ]; !ok && !m.retired[typ] {
			k1, k2 := Keys(m.opt.Key, typ)
			want = append(want, typ)
			cols = append(cols, fmt.Sprintf("pg_try_advisory_lock((%d)::int4, (%d)::int4)", k1, k2))
		}
	}
	if len(want) == 0 && len(m.held) == 0 {
		return // every type retired: nothing to hold or to take
	}
	sql := "SELECT 1"
	if len(cols) > 0 {
		sql = "SELECT " + strings.Join(cols, ", ")
	}
	deadline := time.Now().Add(m.opt.AttemptTimeout)
	if len(m.held) > 0 {
		deadline = m.sentOK.Add(Detect)
	}
	sent := time.Now()
	row, err := m.query(sql, deadline)
	if err != nil {
		m.lost(ctx, err)
		return
	}
	m.sentOK = sent
	for i, typ := range want {
		if i >= len(row) || string(row[i]) != "t" {
			if !m.standby[typ] {
				m.standby[typ] = true
				m.log.Info("singleton held by another replica: standby", "type", typ)
			}
			continue
		}
		h := &held{typ: typ, done: make(chan struct{})}
		m.held[typ] = h
		go func() {
			<-h.done
			m.finished <- h // drained by the loop, stale ones ignored
		}()
		delete(m.standby, typ)
		m.log.Info("singleton lock acquired", "type", typ, "target", m.target)
		select {
		case m.leases <- supervise.Lease{Type: typ, Held: true, Done: h.done}:
		case <-ctx.Done():
			close(h.done) // nothing started: give it up with the connection
		}
	}
}

// query runs sql on the session and waits for its answer until deadline.
// A query that outlives it stays in m.inflight until the connection is
// closed: cancelling it would close the connection, and so free the lock,
// while the process may still run.
func (m *manager) query(sql string, deadline time.Time) ([][]byte, error) {
	res := make(chan result, 1)
	conn := m.conn
	go func() {
		rs, err := conn.Exec(context.Background(), sql).ReadAll()
		var row [][]byte
		if err == nil && len(rs) > 0 && len(rs[0].Rows) > 0 {
			row = rs[0].Rows[0]
		}
		res <- result{row, err}
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-res:
		return r.row, r.err
	case <-t.C:
		m.inflight = res
		return nil, errSilent
	}
}

// lost revokes every held type, waits until the group has stopped their
// processes, and only then closes the session.
func (m *manager) lost(ctx context.Context, err error) {
	if !errors.Is(err, errSilent) {
		err = m.pg.Classify(err)
	}
	types := slices.Sorted(maps.Keys(m.held))
	if len(types) == 0 {
		m.log.Warn("singleton lock connection lost, reconnecting", "target", m.target, "err", err)
	} else {
		m.log.Error("singleton lock session lost: stopping its processes", "types", strings.Join(types, ","),
			"target", m.target, "err", err, "last_answered", time.Since(m.sentOK).Round(time.Millisecond))
	}
	for _, typ := range types {
		select {
		case m.leases <- supervise.Lease{Type: typ}:
		case <-ctx.Done():
		}
	}
	for _, typ := range types {
		select {
		case <-m.held[typ].done:
		case <-ctx.Done():
		}
		delete(m.held, typ)
	}
	m.close()
	clear(m.standby)
}

// unlock gives up typ's lock once its processes are gone; false when the
// session turned out to be lost.
func (m *manager) unlock(typ string) bool {
	k1, k2 := Keys(m.opt.Key, typ)
	sent := time.Now()
	_, err := m.query(fmt.Sprintf("SELECT pg_advisory_unlock((%d)::int4, (%d)::int4)", k1, k2), sent.Add(Detect))
	delete(m.held, typ)
	m.retired[typ] = true
	if err != nil {
		m.lost(context.Background(), err)
		return false
	}
	m.sentOK = sent
	m.log.Info("singleton lock released", "type", typ)
	return true
}

// close ends the session, and with it every lock it holds.
func (m *manager) close() {
	if m.conn == nil {
		return
	}
	if m.inflight != nil {
		m.conn.Conn().Close() // unblocks the query still waiting for an answer
		<-m.inflight
		m.inflight = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	m.conn.Close(ctx)
	cancel()
	m.conn = nil
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
