package supervise

import "context"

// orphansReaped is the number of processes reaped that were not started by
// Start.
func (r *Reaper) orphansReaped() int64 { return r.orphans.Load() }

// waitEmpty returns nil once this process has no child left at all, or the
// error of ctx when it is done first.
func (r *Reaper) waitEmpty(ctx context.Context) error {
	select {
	case <-r.emptied():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
