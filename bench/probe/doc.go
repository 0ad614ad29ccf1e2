// Command probe is the measuring half of bench/all.sh: it times signal-to-exit, reaping and
// detection latencies, samples an idle init in /proc, writes and checks log lines, and
// prints the markdown tables. The script builds it; it is not part of entry.
package main
