// Package supervise runs entry's children the way an init must: one owner of
// wait4(-1) that reaps orphans without losing any child's exit status, signal
// forwarding, bounded stops and clean-up of leftovers, for one main process
// (Run) or a Procfile group.
package supervise
