// Command entry is the ENTRYPOINT of a Django container. It runs a pipeline, one folder per
// stage: internal/plan resolves and validates the environment into a Plan, readiness waits
// for the app's dependencies at protocol level, release runs the release steps once across
// replicas under a Postgres advisory lock, supervise runs the processes as PID 1. This package
// only parses the verb and wires the stages; `entry help` lists every variable.
package main

import (
	"context"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The environment is read here, once; the children inherit this same list.
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
