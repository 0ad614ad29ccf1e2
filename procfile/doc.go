// Package procfile reads Procfiles and formations as honcho and foreman do,
// and decides how each command line is started: directly, or through /bin/sh.
// It starts no processes.
package procfile
