// Package supervise runs processes the way an init must: one owner of
// wait4(-1) that reaps every child and orphan without losing an exit status,
// signal forwarding, a bounded stop sequence and clean-up of leftovers.
package supervise
