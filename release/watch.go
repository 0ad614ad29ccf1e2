package release

import (
	"context"
	"fmt"
	"time"

	"github.com/entry-dev/entry/readiness"
	"github.com/jackc/pgx/v5/pgconn"
)

// Watcher tells whether some session holds the release lock, without ever
// taking it, not even for an instant: it reads pg_locks. A replica polling
// for the lock with pg_try_advisory_lock is therefore never turned away by
// a watcher, as it could be by a watcher's pg_try_advisory_lock_shared.
// Reading pg_locks costs the server a pass over its lock table, once per
// poll: microseconds for the few hundred locks of a Django site.
type Watcher struct {
	pg      *readiness.Postgres
	cfg     *pgconn.Config
	key     int64
	attempt time.Duration
	conn    *pgconn.PgConn
}

// NewWatcher returns a Watcher of lock key on the database of connString. It
// connects on the first Busy. attempt bounds one connection or query.
func NewWatcher(connString string, key int64, appName string, attempt time.Duration) (*Watcher, error) {
	pg, err := readiness.NewPostgres(connString)
	if err != nil {
		return nil, fmt.Errorf("release lock watch: %w", err)
	}
	cfg := pg.Config()
	cfg.RuntimeParams["application_name"] = appName
	if attempt <= 0 {
		attempt = readiness.DefaultAttemptTimeout
	}
	return &Watcher{pg: pg, cfg: cfg, key: key, attempt: attempt}, nil
}

// Target is the watched database, safe to print.
func (w *Watcher) Target() string { return w.pg.String() }

// Busy reports whether a session holds the lock. An error (classified as
// the wait does, safe to print) means this could not be told; the connection
// is then made again at the next call.
func (w *Watcher) Busy(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.attempt)
	defer cancel()
	if w.conn == nil {
		conn, err := pgconn.ConnectConfig(ctx, w.cfg)
		if err != nil {
			return false, w.pg.Classify(err)
		}
		w.conn = conn
	}
	// As in Lock.holder: a bigint key shows as its high and low halves, objsubid 1.
	hi, lo := int64(uint64(w.key)>>32), int64(uint32(w.key))
	res, err := w.conn.Exec(ctx, fmt.Sprintf(`
SELECT EXISTS (SELECT 1 FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid::bigint = %d AND objid::bigint = %d)`, hi, lo)).ReadAll()
	if err != nil {
		w.Close()
		return false, w.pg.Classify(err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 || len(res[0].Rows[0]) == 0 {
		return false, fmt.Errorf("release lock watch: no answer")
	}
	return string(res[0].Rows[0][0]) == "t", nil
}

// Close ends the watcher's session.
func (w *Watcher) Close() {
	if w.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.conn.Close(ctx)
	w.conn = nil
}
