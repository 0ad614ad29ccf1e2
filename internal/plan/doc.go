// Package plan is the first stage of entry's pipeline: plan → wait (readiness) → release →
// supervise. It turns the environment it is given, the _FILE files and the Procfile into one
// Plan, validated as a whole: every invalid input is reported at once, each message starting
// with the variable's name, before anything has started. The later stages read the Plan only.
//
// Every input is bounded. A file is read only when it is a regular file (or a symlink to one,
// as Kubernetes mounts secrets) under a size cap, opened without blocking, so a FIFO or
// /dev/zero cannot hang or exhaust entry; an oversized value is refused without being shown;
// messages never carry control characters.
package plan
