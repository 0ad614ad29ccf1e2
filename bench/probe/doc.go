// Command probe is the measuring half of bench/pid1.sh and bench/logs.sh: it times
// signal-to-exit latencies, samples an idle init in /proc, writes and checks log lines,
// and prints the markdown tables. The scripts build it; it is not part of entry.
package main
