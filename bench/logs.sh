#!/usr/bin/env bash
# Log throughput: three processes each write LINES numbered lines of 80 bytes (a) straight
# into one file (the floor), (b) through entry's Procfile mode, (c) through supervisord set
# up the container way (stdout_logfile=/dev/stdout, stdout_logfile_maxbytes=0, nodaemon).
# Every run's output is checked line by line. Prints markdown tables to stdout (also kept in
# bench/out/logs.md, raw samples in bench/out/logs/).
#
#   bench/logs.sh                     needs Go and supervisor (apt-get install supervisor)
#   RUNS=5 LINES=300000 MODES="32768 1 8192/raw" bench/logs.sh
#
# MODES lists how the writers write, one set of tables each: N writes whole lines, as many
# as fit in N bytes (32768: a fast block-buffered writer; 1: one write per line, as
# unbuffered Python); N/raw writes exactly N bytes each time, cutting lines, as Python's
# block-buffered stdout does when PYTHONUNBUFFERED is not set.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

RUNS=${RUNS:-5}
LINES=${LINES:-300000}
MODES=${MODES:-32768 1 8192/raw}
OUT=bench/out/logs
WRITERS=(w1 w2 w3)

die() {
	echo "logs.sh: $*" >&2
	exit 1
}
command -v go >/dev/null 2>&1 || die "go not found: install Go (see go.mod for the version)"
command -v supervisord >/dev/null 2>&1 || die "supervisord not found: apt-get install supervisor"
command -v timeout >/dev/null 2>&1 || die "timeout not found: apt-get install coreutils"
[ "$RUNS" -ge 3 ] || die "RUNS must be at least 3 (the tables show medians)"
[ "$LINES" -ge 1 ] || die "LINES must be at least 1"
for m in $MODES; do
	[ "${m%/raw}" -ge 1 ] 2>/dev/null || die "MODES: $m is not N or N/raw (N bytes per write)"
done

clean_env

build_bins
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
total=$((LINES * ${#WRITERS[@]}))
programs=$(
	IFS=,
	echo "${WRITERS[*]}"
)

writer() { # name mode
	local raw=""
	[[ $2 == */raw ]] && raw=-raw
	echo "$PROBE write -n $LINES -buf ${2%/raw} $raw -name $1 -done $W/done -of ${#WRITERS[@]}"
}

# configure MODE writes the Procfile and supervisord.conf of writers that write so, and sets
# SETUP to the command of each setup. Each setup appends to $W/out.log (O_APPEND, as a pipe
# to the container runtime would take every write whole at its end: supervisord opens
# /dev/stdout once per program).
configure() {
	local mode=$1 floor="" w
	for w in "${WRITERS[@]}"; do
		echo "$w: $(writer "$w" "$mode")"
		floor+="$(writer "$w" "$mode") & "
	done >"$W/Procfile"
	{
		cat <<-EOF
			[supervisord]
			nodaemon=true
			logfile=/dev/null
			logfile_maxbytes=0
			pidfile=$W/supervisord.pid
			loglevel=warn

			[eventlistener:stopper]
			command=$PROBE listen -programs $programs
			events=PROCESS_STATE
			stderr_logfile=/dev/stderr
			stderr_logfile_maxbytes=0
		EOF
		for w in "${WRITERS[@]}"; do
			cat <<-EOF

				[program:$w]
				command=$(writer "$w" "$mode")
				autorestart=false
				startsecs=0
				stdout_logfile=/dev/stdout
				stdout_logfile_maxbytes=0
				stderr_logfile=/dev/stderr
				stderr_logfile_maxbytes=0
			EOF
		done
	} >"$W/supervisord.conf"
	SETUP=(
		[floor]="timeout 300 bash -c '$floor wait'"
		[entry]="env ENTRY_DISCOVER=false ENTRY_PROCFILE=$W/Procfile timeout 300 $ENTRY"
		[supervisord]="timeout 300 supervisord -c $W/supervisord.conf"
	)
}

declare -A SETUP
# Accepted exit statuses. The first writer to exit stops entry's group (honcho's rule), and
# entry reports it with status 1, though every process ended with 0.
declare -A STATUS=([floor]=0 [entry]="0 1" [supervisord]=0)
declare -A CHECK=([floor]="" [entry]=-prefixed [supervisord]="")
SETUPS=(floor entry supervisord)

# measure MODE runs every setup RUNS times and keeps, per run, lines/s over the writers'
# window, wall time, the path's own CPU time and the line check. entry must deliver every
# line whole in every mode, the floor too unless writes cut lines (three writers into one
# file then interleave their pieces); supervisord's count is reported as it is.
measure() {
	local mode=$1 dir=$OUT/${1/\//-} r s st window writers_cpu wall cpu tally
	mkdir -p "$dir"
	configure "$mode"
	for ((r = 1; r <= RUNS; r++)); do
		# Rounds of one run per setup, so that a busy moment of the machine hits all alike.
		for s in "${SETUPS[@]}"; do
			rm -rf "$W/done" "$W/out.log" "$W/err.log" "$W/run"
			mkdir "$W/done"
			st=0
			# shellcheck disable=SC2086 # SETUP holds a command line
			eval "\"\$PROBE\" run -o \"\$W/run\" -- ${SETUP[$s]}" >>"$W/out.log" 2>>"$W/err.log" || st=$?
			[[ " ${STATUS[$s]} " == *" $st "* ]] || die "$s exited with status $st in run $r: $(tail -5 "$W/err.log")"
			read -r window writers_cpu < <("$PROBE" window "$W/done")
			read -r wall cpu <"$W/run"
			# shellcheck disable=SC2086 # CHECK holds one flag or none
			tally=$("$PROBE" check -n "$LINES" ${CHECK[$s]} "$W/out.log")
			awk -v n="$total" -v w="$window" 'BEGIN { printf "%.0f\n", n / w }' >>"$dir/$s.lps"
			echo "$wall" >>"$dir/$s.wall"
			awk -v c="$cpu" -v w="$writers_cpu" 'BEGIN { printf "%.1f\n", (c - w) * 1000 }' >>"$dir/$s.cpu"
			echo "$tally" >>"$dir/$s.check"
			# shellcheck disable=SC2086
			if { [ "$s" = entry ] || { [ "$s" = floor ] && [[ $mode != */raw ]]; }; } &&
				! "$PROBE" check -n "$LINES" -strict ${CHECK[$s]} "$W/out.log" >/dev/null 2>&1; then
				die "$s lost or cut lines in run $r: $tally"
			fi
		done
	done
}

# worst FIELD FILE: the largest value of FIELD (lost, cut, other) over the runs in FILE.
worst() {
	grep -o " $1=[0-9]*" "$2" | cut -d= -f2 | sort -n | tail -1
}

table() { # dir suffix label unit ref
	local dir=$1 ext=$2
	"$PROBE" table -label setup -metric "$3" -unit "$4" -ref "$5" \
		floor="$dir/floor.$ext" entry="$dir/entry.$ext" supervisord="$dir/supervisord.$ext"
}

report() {
	local mode dir s
	echo "# Log throughput: entry vs supervisord"
	echo
	echo "$(uname -sr), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
		"entry $(git describe --always --dirty 2>/dev/null || echo '?'), $(go env GOVERSION); supervisord $(supervisord --version)."
	echo "Three writers, $LINES lines of 80 bytes each ($((total * 80 / 1000000)) MB in all); $RUNS runs of" \
		"each setup, interleaved; output appended to a file. Medians; ratios are of medians."
	echo
	echo "- floor: the three writers straight into the file."
	echo "- entry: \`entry\` with a three-line Procfile, stdout to the file; each line becomes \`w1.1  | ...\`."
	echo "- supervisord: three [program]s with stdout_logfile=/dev/stdout, stdout_logfile_maxbytes=0," \
		"autorestart=false, startsecs=0, nodaemon; an event listener sends it SIGTERM once the three have exited."
	echo
	echo "Throughput is lines/s over the writers' window: from the first writer's start to the last" \
		"writer's last write(2) returning. A writer blocks while its pipe is full, so this is the rate" \
		"the path takes lines at, or the writers' own rate when the path keeps up. Wall time is the" \
		"whole run, start and stop of the supervisor included. CPU is the path's own: the run's CPU" \
		"time (the command and every process it waited for, from wait4's rusage) less the writers'" \
		"(for the floor: bash). Lines are checked in every run (the script fails if entry loses" \
		"or cuts one): lost = writer lines that never arrived whole; cut = fragments and glued" \
		"lines; other = lines no writer wrote (supervisord's own log lines); the worst run is" \
		"shown. When writes cut lines, three writers into one file interleave their pieces, so" \
		"the floor cuts lines too: that is what a container's stdout gets from several processes" \
		"that share it without a relay that reassembles lines."
	for mode in $MODES; do
		dir=$OUT/${mode/\//-}
		echo
		if [[ $mode == */raw ]]; then
			echo "## Writes of exactly ${mode%/raw} bytes, lines cut across writes (block-buffered Python stdout)"
		elif [ "$mode" -eq 1 ]; then
			echo "## One write(2) per line (unbuffered Python)"
		else
			echo "## Writes of up to $mode bytes, whole lines (a fast block-buffered writer)"
		fi
		echo
		table "$dir" lps throughput lines/s floor
		echo
		table "$dir" wall "wall time" s floor
		echo
		table "$dir" cpu CPU ms entry
		echo
		echo "| setup | lines per run | lost | cut | other |"
		echo "|---|--:|--:|--:|--:|"
		for s in "${SETUPS[@]}"; do
			echo "| $s | $total | $(worst lost "$dir/$s.check") | $(worst cut "$dir/$s.check") | $(worst other "$dir/$s.check") |"
		done
	done
}

for m in $MODES; do
	measure "$m"
done
report | tee bench/out/logs.md
