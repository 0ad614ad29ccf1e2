#!/usr/bin/env bash
# entry as PID 1 next to tini and dumb-init, each the init of a fresh PID namespace
# (unshare --pid --fork --mount-proc): exec overhead, SIGTERM-to-exit latency, SIGTERM
# during the wait phase, idle CPU and memory, binary size. Prints markdown tables to stdout
# (also kept in bench/out/pid1.md, raw samples in bench/out/pid1/).
#
#   bench/pid1.sh                      needs root (or unshare rights), Go, tini, dumb-init, hyperfine
#   RUNS=30 EXEC_RUNS=300 IDLE_WINDOW=10s IDLE_ROUNDS=3 bench/pid1.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

RUNS=${RUNS:-30}               # runs of each SIGTERM measurement (at least 20)
EXEC_RUNS=${EXEC_RUNS:-300}    # hyperfine runs of each exec-overhead command
IDLE_WINDOW=${IDLE_WINDOW:-10s}
IDLE_ROUNDS=${IDLE_ROUNDS:-3}
OUT=bench/out/pid1

die() {
	echo "pid1.sh: $*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}
need go "install Go (see go.mod for the version)"
need unshare "apt-get install util-linux"
need tini "apt-get install tini"
need tini-static "apt-get install tini (it ships tini-static)"
need dumb-init "apt-get install dumb-init"
need hyperfine "apt-get install hyperfine"
need gzip "apt-get install gzip"
unshare --pid --fork --mount-proc --kill-child /bin/true 2>/dev/null ||
	die "unshare --pid --fork --mount-proc fails here: run as root (PID namespaces need CAP_SYS_ADMIN)"
[ "$RUNS" -ge 1 ] && [ "$EXEC_RUNS" -ge 1 ] && [ "$IDLE_ROUNDS" -ge 1 ] || die "RUNS, EXEC_RUNS and IDLE_ROUNDS must be at least 1"

# Nothing from the caller's environment may give entry something to wait for.
clean_env
export ENTRY_DISCOVER=false

build_bins
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

U=(unshare --pid --fork --mount-proc --kill-child)
declare -A INIT=(
	[tini]="$(command -v tini) --"
	[tini-static]="$(command -v tini-static) --"
	[dumb-init]="$(command -v dumb-init) --"
	[entry]="$ENTRY --"
)
INITS=(tini dumb-init entry)

# The main process is a shell with three sleep children. "children": on SIGTERM it sends
# SIGTERM to its three children, waits for them and exits 143. "orphans": it exits 143 at
# once and leaves them running. It prints "ready" once it has their pids; probe also waits
# until the three have exec'd sleep (see bench/probe, termCmd).
CHILDREN='trap "kill \$a \$b \$c 2>/dev/null; wait; exit 143" TERM
sleep 1000 & a=$!; sleep 1000 & b=$!; sleep 1000 & c=$!; echo ready; wait'
ORPHANS='trap "exit 143" TERM
sleep 1000 & sleep 1000 & sleep 1000 & echo ready; wait'

term_table() { # name script
	local name=$1 script=$2
	mkdir -p "$OUT/$name"
	# Rounds of one run per init, so that a busy moment of the machine hits all alike.
	for ((r = 0; r < RUNS; r++)); do
		for i in "${INITS[@]}"; do
			# shellcheck disable=SC2086 # INIT holds a path and "--"
			"$PROBE" term -runs 1 -status 143 -- "${U[@]}" ${INIT[$i]} /bin/sh -c "$script" \
				>>"$OUT/$name/$i.txt" || die "SIGTERM run of $i failed"
		done
	done
	"$PROBE" table -label init -unit ms -ref tini \
		tini="$OUT/$name/tini.txt" dumb-init="$OUT/$name/dumb-init.txt" entry="$OUT/$name/entry.txt"
}

report() {
	echo "# entry as PID 1: entry vs tini vs dumb-init"
	echo
	echo "$(uname -sr), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
		"entry $(git describe --always --dirty 2>/dev/null || echo '?'), $(go env GOVERSION);" \
		"tini $(tini --version | awk '{print $3}'), dumb-init $(dumb-init --version 2>&1 | awk '{print $2}'), $(hyperfine --version)."
	echo "Every init is PID 1 of a fresh namespace: \`${U[*]} INIT -- CMD\`. Medians; × tini is the ratio of medians."

	echo
	echo "## Exec overhead: \`INIT -- /bin/true\`"
	echo
	echo "Wall time of the whole command (hyperfine -N, 20 warm-up runs, $EXEC_RUNS runs);" \
		"floor is \`${U[*]} /bin/true\` with no init. entry runs with ENTRY_DISCOVER=false and" \
		"nothing to wait for. Two rows split entry's start-up: \"go noop\" is a small static Go" \
		"program that returns at once (\`bench/out/bin/probe noop\`, the Go runtime's own start)," \
		"\"entry version\" is entry's binary loaded and initialised, printing its version."
	echo
	hf=(timeout 600 hyperfine -N --warmup 20 --runs "$EXEC_RUNS" --export-json "$OUT/exec.json" -n floor "${U[*]} /bin/true")
	hf+=(-n go-noop "${U[*]} $PROBE noop" -n entry-version "${U[*]} $ENTRY version")
	for i in tini tini-static dumb-init entry; do
		hf+=(-n "$i" "${U[*]} ${INIT[$i]} /bin/true")
	done
	"${hf[@]}" >"$OUT/hyperfine.txt" 2>&1 || die "hyperfine failed: $(tail -5 "$OUT/hyperfine.txt")"
	mkdir -p "$OUT/exec"
	"$PROBE" hyperfine -dir "$OUT/exec" "$OUT/exec.json"
	"$PROBE" table -label init -unit ms -ref tini -floor floor \
		floor="$OUT/exec/floor.txt" "go noop"="$OUT/exec/go-noop.txt" "entry version"="$OUT/exec/entry-version.txt" \
		tini="$OUT/exec/tini.txt" tini-static="$OUT/exec/tini-static.txt" \
		dumb-init="$OUT/exec/dumb-init.txt" entry="$OUT/exec/entry.txt"

	echo
	echo "## SIGTERM to exit, main process with three children that it stops"
	echo
	echo "From kill(2) of the init, sent from the parent namespace, to the init's exit as its parent" \
		"sees it (its pidfd turns readable), $RUNS runs. The main process, \`sh -c\`, traps TERM," \
		"sends TERM to its three \`sleep\` children, waits for them and exits 143. tini and entry" \
		"pass TERM to the shell only; dumb-init sends it to the whole session (shell and sleeps at" \
		"once). Every run must end with status 143."
	echo
	term_table term-children "$CHILDREN"

	echo
	echo "## SIGTERM to exit, main process that exits and leaves its three children"
	echo
	echo "Same measure; on TERM the shell exits 143 at once and leaves its three \`sleep\`" \
		"children behind. tini exits as soon as the shell is gone and the kernel SIGKILLs the" \
		"sleeps while tearing the namespace down (inside the measured time); dumb-init has already" \
		"sent TERM to the whole session; entry sends TERM to the leftovers (found through /proc) and exits" \
		"once they are reaped."
	echo
	term_table term-orphans "$ORPHANS"

	echo
	echo "## SIGTERM during entry's wait phase"
	echo
	echo "\`entry wait\` as PID 1, from kill(2) to exit (status 143), $RUNS runs. refused: ENTRY_WAIT" \
		"is a closed TCP port; SIGTERM is sent after entry logged the first refusal (it is backing" \
		"off or dialling again). silent: ENTRY_WAIT is a postgres:// URL of a server that accepts" \
		"and never answers; SIGTERM is sent once entry's probe has connected and sent its first" \
		"bytes (it is inside a 5 s attempt). Claim checked: exits within 100 ms."
	echo
	mkdir -p "$OUT/wait"
	for mode in refused silent; do
		"$PROBE" wait -runs "$RUNS" -mode "$mode" -status 143 -- "${U[@]}" "$ENTRY" wait \
			>"$OUT/wait/$mode.txt" || die "SIGTERM during entry wait ($mode) failed"
	done
	"$PROBE" table -label "dependency" -unit ms refused="$OUT/wait/refused.txt" silent="$OUT/wait/silent.txt"
	worst=$(sort -n "$OUT/wait/refused.txt" "$OUT/wait/silent.txt" | tail -1)
	if awk -v w="$worst" 'BEGIN { exit !(w < 100) }'; then
		echo
		echo "Slowest of $((2 * RUNS)) runs: $worst ms: every run exited within 100 ms."
	else
		echo
		echo "Slowest of $((2 * RUNS)) runs: $worst ms: the 100 ms claim does NOT hold in every run."
	fi

	echo
	echo "## Idle: one sleeping child for $IDLE_WINDOW"
	echo
	echo "The init's use over $IDLE_WINDOW, 1 s after its child \`sleep 1000\` started; $IDLE_ROUNDS" \
		"rounds, the inits of a round side by side. CPU: utime+stime of /proc/PID/stat (10 ms ticks)" \
		"and time on CPU from /proc/PID/task/*/schedstat; context switches: voluntary +" \
		"nonvoluntary of /proc/PID/task/*/status (all threads); VmRSS, VmHWM of /proc/PID/status" \
		"at the end. \"entry (Procfile)\" runs the same child from a one-line Procfile." \
		"Cells: median (min–max) ×ratio to tini."
	echo
	mkdir -p "$OUT/idle"
	printf 'idle: sleep 1000\n' >"$TMP/Procfile"
	for ((r = 0; r < IDLE_ROUNDS; r++)); do
		pids=()
		for i in "${INITS[@]}"; do
			# shellcheck disable=SC2086
			"$PROBE" idle -window "$IDLE_WINDOW" -child sleep -- "${U[@]}" ${INIT[$i]} sleep 1000 \
				>>"$OUT/idle/$i.txt" &
			pids+=($!)
		done
		ENTRY_PROCFILE="$TMP/Procfile" "$PROBE" idle -window "$IDLE_WINDOW" -child sleep -- "${U[@]}" "$ENTRY" \
			>>"$OUT/idle/entry-procfile.txt" &
		pids+=($!)
		for p in "${pids[@]}"; do
			wait "$p" || die "idle measurement failed"
		done
	done
	"$PROBE" table -label init -ref tini \
		-cols "CPU utime+stime (ms),CPU schedstat (µs),context switches,VmRSS (KiB),VmHWM (KiB),threads" \
		tini="$OUT/idle/tini.txt" dumb-init="$OUT/idle/dumb-init.txt" entry="$OUT/idle/entry.txt" \
		"entry (Procfile)"="$OUT/idle/entry-procfile.txt"

	echo
	echo "## Binary size"
	echo
	echo "entry built as the Dockerfile does (\`CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\"\`);" \
		"the others are the Debian packages'. gzip -9 approximates the size in a compressed image layer."
	echo
	tini_size=$(stat -c %s "$(command -v tini)")
	tini_static_size=$(stat -c %s "$(command -v tini-static)")
	echo "| binary | bytes | gzip -9 bytes | linking | × tini | × tini-static |"
	echo "|---|--:|--:|---|--:|--:|"
	for i in tini tini-static dumb-init entry; do
		f=$(command -v "${INIT[$i]% --}")
		size=$(stat -c %s "$f")
		gz=$(gzip -9 -c "$f" | wc -c)
		awk -v n="$i" -v s="$size" -v g="$gz" -v k="$("$PROBE" elf "$f")" -v t="$tini_size" -v ts="$tini_static_size" \
			'BEGIN { printf "| %s | %d | %d | %s | ×%.2f | ×%.2f |\n", n, s, g, k, s / t, s / ts }'
	done
}

report | tee bench/out/pid1.md
