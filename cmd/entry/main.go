// Command entry is the ENTRYPOINT of a Django container: it waits for the app's dependencies
// at protocol level, runs the release steps once across replicas under a Postgres advisory
// lock, then supervises the processes as PID 1. `entry help` lists every variable.
package main

import (
	"context"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
