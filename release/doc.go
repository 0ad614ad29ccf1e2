// Package release runs one-shot release steps (migrate, collectstatic) before the
// processes start, one replica at a time: the steps run while this replica holds a
// Postgres session advisory lock, and stop if that lock's session is lost.
package release
