package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/entry-dev/entry/internal/plan"
)

// healthTimeout bounds `entry health`: a HEALTHCHECK must not hang when entry is stuck.
const healthTimeout = 2 * time.Second

// health asks the entry of this container, listening on ENTRY_HEALTH_ADDR, whether it is
// ready: 0 when /readyz answers 200, 1 when it answers otherwise or not in time, 78 when
// ENTRY_HEALTH_ADDR is unset or invalid. It reads nothing else, so that a probe cannot fail
// for a reason that does not concern the running entry.
func health(ctx context.Context, environ []string, stdout, stderr io.Writer) int {
	target, err := plan.HealthTarget(environ)
	if err != nil {
		fmt.Fprintf(stderr, "entry health: %v\n", err)
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/readyz", nil)
	if err != nil {
		fmt.Fprintf(stderr, "entry health: %v\n", err)
		return exitConfig
	}
	// No proxy: the question is for this container's own entry.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		why := "no answer within " + healthTimeout.String()
		if op := (*net.OpError)(nil); errors.As(err, &op) && ctx.Err() == nil {
			why = op.Err.Error()
		}
		fmt.Fprintf(stderr, "entry health: %s: %s\n", target, why)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		if msg == "" {
			msg = resp.Status
		}
		fmt.Fprintf(stdout, "%s\n", msg)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", msg)
	return 0
}
