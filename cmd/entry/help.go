package main

import (
	"fmt"
	"io"

	"github.com/entry-dev/entry/internal/plan"
)

const usage = `usage: entry [--] CMD [ARG...]   wait, release, then run CMD as the main process
       entry                     the same, with the processes of the Procfile
       entry wait                wait for the dependencies, then exit 0
       entry check               probe each dependency once and print a table
       entry config              print the resolved plan, secrets redacted
       entry health              exit 0 if this container's entry is ready (ENTRY_HEALTH_ADDR)
       entry version | help
`

func printHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	fmt.Fprint(w, `
Exit status: the main process's own status (128+N if signal N killed it); 126/127 if the
command cannot be run / is not found; a failed release step's status; 64 bad arguments;
78 bad environment; 69 a dependency was not ready in time or refused entry for good.

Environment (default in the second column):

`)
	plan.Help(w)
}
