#!/usr/bin/env bash
# Every performance scenario of entry next to the tools it replaces, in one run, on this
# machine, and ONE table of medians and ratios (stdout, also bench/out/all.md). The per
# scenario tables with minimum and maximum are in bench/out/details.md, raw samples in
# bench/out/*/.
#
#   bench/all.sh        as root (PID namespaces, postgres run as its own account)
#
# Peers, all from Debian (installed here when missing): tini and tini-static (tini),
# dumb-init, wait-for-it, supervisord (supervisor), pg_isready (postgresql-client), a real
# PostgreSQL server (postgresql), hyperfine, perl; plus bench/gofork, a bare Go
# fork/exec/wait program, the floor of any Go init.
#
#   S1  exec overhead as PID 1: INIT -- /bin/true, minus bare /bin/true
#   S2  SIGTERM to everything gone, three children that exit on TERM
#   S3  detection latency: child start minus the moment the dependency became ready
#   S4  idle for IDLE_WINDOW supervising three children: CPU, context switches, RSS
#   S5  reaping ZOMBIES orphaned zombies, then exit
#   S6  binary size
#   S7  log throughput, three writers of LOG_LINES lines, every line checked
#
# Knobs (environment): EXEC_RUNS=300 TERM_RUNS=30 DETECT_RUNS=20 IDLE_WINDOW=10s
# IDLE_ROUNDS=3 REAP_RUNS=10 ZOMBIES=5000 LOG_RUNS=5 LOG_LINES=200000 LOG_MODES="32768 8192/raw"
# Everything talks to loopback or to namespaces it creates; the servers it starts are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

EXEC_RUNS=${EXEC_RUNS:-300}
TERM_RUNS=${TERM_RUNS:-30}
DETECT_RUNS=${DETECT_RUNS:-20}
IDLE_WINDOW=${IDLE_WINDOW:-10s}
IDLE_ROUNDS=${IDLE_ROUNDS:-3}
REAP_RUNS=${REAP_RUNS:-10}
ZOMBIES=${ZOMBIES:-5000}
LOG_RUNS=${LOG_RUNS:-5}
LOG_LINES=${LOG_LINES:-200000}
LOG_MODES=${LOG_MODES:-32768 8192/raw}
OUT=bench/out

die() {
	echo "all.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "run as root: PID namespaces, and postgres started as its own account"
command -v go >/dev/null 2>&1 || die "go not found: install Go (see go.mod for the version)"
missing=()
for t in hyperfine:hyperfine tini:tini tini-static:tini dumb-init:dumb-init wait-for-it:wait-for-it \
	supervisord:supervisor perl:perl-base unshare:util-linux gzip:gzip; do
	command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
	echo "all.sh: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
unshare --pid --fork --mount-proc --kill-child /bin/true 2>/dev/null ||
	die "unshare --pid --fork --mount-proc fails here (PID namespaces need CAP_SYS_ADMIN)"
PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin | sort -V | tail -1)

# Nothing from the caller's environment may give entry something to wait for.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(ENTRY_|DATABASE_URL|CELERY_BROKER_URL|REDIS_URL|POSTGRES_|SENTRY_)' || true)
export ENTRY_DISCOVER=false

rm -rf "$OUT"
mkdir -p "$OUT/bin"
build() { CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/bin/$1" "$2"; }
# entry as Dockerfile.example builds it.
build entry ./cmd/entry
build probe ./bench/probe
build gofork ./bench/gofork
ENTRY=$PWD/$OUT/bin/entry
PROBE=$PWD/$OUT/bin/probe
GOFORK=$PWD/$OUT/bin/gofork
TMP=$(mktemp -d)
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
DETAILS=$OUT/details.md
: >"$DETAILS"
detail() { tee -a "$DETAILS" >/dev/null; }
stats() { "$PROBE" stats "$1"; } # median n min max negatives
med() { stats "$1" | cut -d' ' -f1; }

U=(unshare --pid --fork --mount-proc --kill-child)
declare -A INIT=(
	[tini]="$(command -v tini) --"
	[dumb-init]="$(command -v dumb-init) --"
	[entry]="$ENTRY --"
	[bare-go]="$GOFORK"
)
# The main process of the peers: a shell with three sleep children; on SIGTERM it sends
# SIGTERM to them, waits for them and exits 143. entry runs the three from a Procfile.
# shellcheck disable=SC2016 # expanded by the shell that runs it
CHILDREN='trap "kill \$a \$b \$c 2>/dev/null; wait; exit 143" TERM
sleep 1000 & a=$!; sleep 1000 & b=$!; sleep 1000 & c=$!; echo ready; wait'
printf 'a: sleep 1000\nb: sleep 1000\nc: sleep 1000\n' >"$TMP/Procfile"
PROCFILE=(env "ENTRY_PROCFILE=$TMP/Procfile" "${U[@]}" "$ENTRY")

echo "# bench/all.sh details: $(date -u '+%Y-%m-%d %H:%M UTC')" | detail

# S1 ------------------------------------------------------------------------------------
echo "S1 exec overhead ($EXEC_RUNS runs each)" >&2
hf=(timeout 900 hyperfine -N --warmup 20 --runs "$EXEC_RUNS" --export-json "$OUT/exec.json" -n floor "${U[*]} /bin/true")
for i in bare-go tini dumb-init entry; do
	hf+=(-n "$i" "${U[*]} ${INIT[$i]} /bin/true")
done
hf+=(-n tini-static "${U[*]} $(command -v tini-static) -- /bin/true")
"${hf[@]}" >"$OUT/hyperfine.txt" 2>&1 || die "hyperfine failed: $(tail -5 "$OUT/hyperfine.txt")"
mkdir -p "$OUT/exec"
"$PROBE" hyperfine -dir "$OUT/exec" "$OUT/exec.json"
{
	echo
	echo "## S1 exec overhead: \`${U[*]} INIT /bin/true\` (hyperfine -N, $EXEC_RUNS runs, ms)"
	echo
	"$PROBE" table -label init -unit ms -ref bare-go -floor floor floor="$OUT/exec/floor.txt" \
		bare-go="$OUT/exec/bare-go.txt" tini="$OUT/exec/tini.txt" tini-static="$OUT/exec/tini-static.txt" \
		dumb-init="$OUT/exec/dumb-init.txt" entry="$OUT/exec/entry.txt"
} | detail

# S2 ------------------------------------------------------------------------------------
echo "S2 SIGTERM ($TERM_RUNS rounds)" >&2
mkdir -p "$OUT/term"
for ((r = 0; r < TERM_RUNS; r++)); do
	for i in tini dumb-init entry; do
		# shellcheck disable=SC2086 # INIT holds a path and "--"
		"$PROBE" term -runs 1 -status 143 -- "${U[@]}" ${INIT[$i]} /bin/sh -c "$CHILDREN" \
			>>"$OUT/term/$i.txt" || die "SIGTERM run of $i failed"
	done
	"$PROBE" term -runs 1 -ready "" -status 0 -- "${PROCFILE[@]}" >>"$OUT/term/entry-procfile.txt" ||
		die "SIGTERM run of entry (Procfile) failed"
done
{
	echo
	echo "## S2 SIGTERM to everything gone, three children that exit on TERM ($TERM_RUNS runs, ms)"
	echo
	"$PROBE" table -label init -unit ms -ref dumb-init tini="$OUT/term/tini.txt" dumb-init="$OUT/term/dumb-init.txt" \
		"entry -- sh"="$OUT/term/entry.txt" "entry (Procfile)"="$OUT/term/entry-procfile.txt"
} | detail

# SIGTERM while entry waits: for a refused port (after its first refusal) and for a Postgres
# that accepts and never answers (inside an attempt). The README claims exit within 100 ms.
mkdir -p "$OUT/term-wait"
for mode in refused silent; do
	"$PROBE" wait -runs "$TERM_RUNS" -mode "$mode" -status 143 -- "${U[@]}" "$ENTRY" wait \
		>"$OUT/term-wait/$mode.txt" || die "SIGTERM during entry wait ($mode) failed"
done
{
	echo
	echo "## SIGTERM during \`entry wait\` as PID 1 ($TERM_RUNS runs each, ms)"
	echo
	"$PROBE" table -label dependency -unit ms refused="$OUT/term-wait/refused.txt" silent="$OUT/term-wait/silent.txt"
} | detail

# S3 ------------------------------------------------------------------------------------
echo "S3 detection latency ($DETECT_RUNS runs per dependency)" >&2
PGROOT=$TMP/pg
mkdir -p "$PGROOT/data"
echo bench >"$TMP/pgpw"
chown -R postgres "$PGROOT" "$TMP/pgpw"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --pwfile "$TMP/pgpw" \
	--auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C --no-sync --no-instructions \
	>"$OUT/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$OUT/initdb.log")"
PGURL='postgres://postgres:bench@127.0.0.1:{port}/postgres?sslmode=disable'
GO=/bin/echo\ go
mkdir -p "$OUT/detect-tcp" "$OUT/detect-pg"
"$PROBE" detect -server tcp -runs "$DETECT_RUNS" -dir "$OUT/detect-tcp" \
	entry="ENTRY_WAIT=tcp://127.0.0.1:{port} $ENTRY -- $GO 2>/dev/null" \
	wait-for-it="wait-for-it -q -t 0 127.0.0.1:{port} -- $GO" ||
	die "detection (tcp) failed"
"$PROBE" detect -server postgres -runs "$DETECT_RUNS" -dir "$OUT/detect-pg" \
	-pgbin "$PGBIN" -pgdata "$PGROOT/data" \
	entry="ENTRY_WAIT='$PGURL' $ENTRY -- $GO 2>/dev/null" \
	wait-for-it="wait-for-it -q -t 0 127.0.0.1:{port} -- $GO" \
	pg_isready-loop="until $PGBIN/pg_isready -q -h 127.0.0.1 -p {port}; do sleep 1; done; exec $GO" ||
	die "detection (postgres) failed"
{
	echo
	echo "## S3 detection latency: child start minus the moment the dependency became ready ($DETECT_RUNS runs, delay 0.2–3.5 s, ms)"
	echo
	echo "TCP: ready when listen(2) returned. Postgres (SCRAM password, entry checks login + SELECT 1): ready when the postmaster logged \"database system is ready to accept connections\" (until then it answers 57P03). A negative latency is a child started before that."
	echo
	"$PROBE" table -label "waiter, tcp" -unit ms -ref wait-for-it entry="$OUT/detect-tcp/entry.txt" wait-for-it="$OUT/detect-tcp/wait-for-it.txt"
	echo
	"$PROBE" table -label "waiter, postgres" -unit ms -ref pg_isready-loop entry="$OUT/detect-pg/entry.txt" \
		wait-for-it="$OUT/detect-pg/wait-for-it.txt" pg_isready-loop="$OUT/detect-pg/pg_isready-loop.txt"
} | detail

# S4 ------------------------------------------------------------------------------------
echo "S4 idle ($IDLE_ROUNDS rounds of $IDLE_WINDOW)" >&2
mkdir -p "$OUT/idle"
for ((r = 0; r < IDLE_ROUNDS; r++)); do
	pids=()
	for i in tini dumb-init; do
		# shellcheck disable=SC2086
		"$PROBE" idle -window "$IDLE_WINDOW" -child sleep -count 3 -- "${U[@]}" ${INIT[$i]} /bin/sh -c "$CHILDREN" \
			>>"$OUT/idle/$i.txt" &
		pids+=($!)
	done
	"$PROBE" idle -window "$IDLE_WINDOW" -child sleep -count 3 -- "${PROCFILE[@]}" >>"$OUT/idle/entry.txt" &
	pids+=($!)
	for p in "${pids[@]}"; do
		wait "$p" || die "idle measurement failed"
	done
done
{
	echo
	echo "## S4 idle for $IDLE_WINDOW supervising three sleeping children ($IDLE_ROUNDS rounds side by side)"
	echo
	echo "CPU: utime+stime (10 ms ticks) and schedstat of every thread; context switches of every thread; VmRSS/VmHWM at the end (one address space: all threads). entry runs them from a Procfile, the peers from a shell."
	echo
	"$PROBE" table -label init -ref tini \
		-cols "CPU utime+stime (ms),CPU schedstat (µs),context switches,VmRSS (KiB),VmHWM (KiB),threads" \
		tini="$OUT/idle/tini.txt" dumb-init="$OUT/idle/dumb-init.txt" "entry (Procfile)"="$OUT/idle/entry.txt"
} | detail

# S5 ------------------------------------------------------------------------------------
echo "S5 reaping $ZOMBIES zombies ($REAP_RUNS rounds)" >&2
mkdir -p "$OUT/reap"
# perl forks ZOMBIES children that exit at once and are never waited for; when perl exits
# they pass, as zombies, to the init.
# shellcheck disable=SC2016 # perl, not shell
ZOMBIE_MAKER='$|=1; for (1..$ARGV[0]) { my $p = fork; die "fork: $!" unless defined $p; POSIX::_exit(0) unless $p } print "ready\n"; <STDIN>; exit 0'
for ((r = 0; r < REAP_RUNS; r++)); do
	for i in tini dumb-init entry; do
		# shellcheck disable=SC2086
		"$PROBE" reap -runs 1 -- "${U[@]}" ${INIT[$i]} perl -MPOSIX -e "$ZOMBIE_MAKER" "$ZOMBIES" \
			>>"$OUT/reap/$i.txt" || die "reap run of $i failed"
	done
done
{
	echo
	echo "## S5 reap $ZOMBIES orphaned zombies and exit ($REAP_RUNS runs, ms)"
	echo
	echo "From the line that makes the main process exit (its $ZOMBIES zombies pass to the init) to the init's exit."
	echo
	"$PROBE" table -label init -unit ms -ref tini tini="$OUT/reap/tini.txt" dumb-init="$OUT/reap/dumb-init.txt" entry="$OUT/reap/entry.txt"
} | detail

# S6 ------------------------------------------------------------------------------------
declare -A SIZE
for b in tini tini-static dumb-init bare-go entry; do
	case $b in
	bare-go) f=$GOFORK ;;
	entry) f=$ENTRY ;;
	*) f=$(command -v "$b") ;;
	esac
	SIZE[$b]=$(stat -c %s "$f")
done
{
	echo
	echo "## S6 binary size"
	echo
	echo "| binary | bytes | MiB | gzip -9 bytes | linking |"
	echo "|---|--:|--:|--:|---|"
	for b in tini tini-static dumb-init bare-go entry; do
		case $b in
		bare-go) f=$GOFORK ;;
		entry) f=$ENTRY ;;
		*) f=$(command -v "$b") ;;
		esac
		awk -v n="$b" -v s="${SIZE[$b]}" -v g="$(gzip -9 -c "$f" | wc -c)" -v k="$("$PROBE" elf "$f")" \
			'BEGIN { printf "| %s | %d | %.2f | %d | %s |\n", n, s, s / 1048576, g, k }'
	done
} | detail

# S7 ------------------------------------------------------------------------------------
# Three writers, LOG_LINES numbered lines of 80 bytes each: straight into one file (the
# floor), through entry's Procfile mode, through supervisord set up the container way.
# Every run's output is checked line by line.
echo "S7 log throughput ($LOG_RUNS rounds per mode)" >&2
W=$TMP/logs
mkdir -p "$W"
WRITERS=(w1 w2 w3)
total=$((LOG_LINES * ${#WRITERS[@]}))
writer() { # name mode
	local raw=""
	[[ $2 == */raw ]] && raw=-raw
	echo "$PROBE write -n $LOG_LINES -buf ${2%/raw} $raw -name $1 -done $W/done -of ${#WRITERS[@]}"
}
declare -A SETUP
configure() { # mode
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
			command=$PROBE listen -programs $(IFS=, && echo "${WRITERS[*]}")
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
		[direct]="timeout 300 bash -c '$floor wait'"
		[entry]="env ENTRY_PROCFILE=$W/Procfile timeout 300 $ENTRY"
		[supervisord]="timeout 300 supervisord -c $W/supervisord.conf"
	)
}
# The first writer to exit stops entry's group (honcho's rule): entry then exits 1.
declare -A STATUS=([direct]=0 [entry]="0 1" [supervisord]=0)
declare -A CHECK=([direct]="" [entry]=-prefixed [supervisord]="")
for mode in $LOG_MODES; do
	dir=$OUT/logs/${mode/\//-}
	mkdir -p "$dir"
	configure "$mode"
	for ((r = 1; r <= LOG_RUNS; r++)); do
		for s in direct entry supervisord; do
			rm -rf "$W/done" "$W/out.log" "$W/err.log" "$W/run"
			mkdir "$W/done"
			st=0
			# shellcheck disable=SC2086 # SETUP holds a command line
			eval "\"\$PROBE\" run -o \"\$W/run\" -- ${SETUP[$s]}" >>"$W/out.log" 2>>"$W/err.log" || st=$?
			[[ " ${STATUS[$s]} " == *" $st "* ]] || die "$s exited with status $st: $(tail -5 "$W/err.log")"
			read -r window _ < <("$PROBE" window "$W/done")
			# shellcheck disable=SC2086
			tally=$("$PROBE" check -n "$LOG_LINES" ${CHECK[$s]} "$W/out.log")
			awk -v n="$total" -v w="$window" 'BEGIN { printf "%.0f\n", n / w }' >>"$dir/$s.lps"
			grep -o ' cut=[0-9]*' <<<"$tally" | cut -d= -f2 >>"$dir/$s.cut"
			grep -o ' lost=[0-9]*' <<<"$tally" | cut -d= -f2 >>"$dir/$s.lost"
			# shellcheck disable=SC2086
			if [ "$s" = entry ] && ! "$PROBE" check -n "$LOG_LINES" -strict ${CHECK[$s]} "$W/out.log" >/dev/null 2>&1; then
				die "entry lost or cut lines: $tally"
			fi
		done
	done
	{
		echo
		echo "## S7 log throughput, writes of ${mode%/raw} bytes$([[ $mode == */raw ]] && echo ", lines cut across writes"), 3 × $LOG_LINES lines ($LOG_RUNS runs, lines/s)"
		echo
		"$PROBE" table -label setup -metric throughput -unit lines/s -ref direct direct="$dir/direct.lps" \
			entry="$dir/entry.lps" supervisord="$dir/supervisord.lps"
		echo
		echo "Worst run: lost / cut lines: direct $(sort -n "$dir/direct.lost" | tail -1) / $(sort -n "$dir/direct.cut" | tail -1)," \
			"entry $(sort -n "$dir/entry.lost" | tail -1) / $(sort -n "$dir/entry.cut" | tail -1)," \
			"supervisord $(sort -n "$dir/supervisord.lost" | tail -1) / $(sort -n "$dir/supervisord.cut" | tail -1)."
	} | detail
done

# The one table --------------------------------------------------------------------------
f2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "×%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "yes" : "no" }'; }
maxcut() { sort -n "$1" | tail -1; }

report() {
	local floor e t ts d g
	echo "# entry vs the tools it replaces: bench/all.sh"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -sr), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
		"entry $(git describe --always --dirty 2>/dev/null || echo '?'), $(go env GOVERSION); tini $(tini --version | awk '{print $3}')," \
		"dumb-init $(dumb-init --version 2>&1 | awk '{print $2}'), supervisord $(supervisord --version), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')."
	echo "Medians; ratios are entry's median over the reference's, from the same run. Details: bench/out/details.md."
	echo
	echo "| scenario | entry | peers (same run) | entry / ref | goal | met |"
	echo "|---|--:|---|--:|---|---|"

	floor=$(med "$OUT/exec/floor.txt")
	e=$(sub "$(med "$OUT/exec/entry.txt")" "$floor")
	g=$(sub "$(med "$OUT/exec/bare-go.txt")" "$floor")
	t=$(sub "$(med "$OUT/exec/tini.txt")" "$floor")
	ts=$(sub "$(med "$OUT/exec/tini-static.txt")" "$floor")
	d=$(sub "$(med "$OUT/exec/dumb-init.txt")" "$floor")
	echo "| S1 exec overhead as PID 1, ms over bare /bin/true ($(f2 "$floor") ms) | $e | bare Go $g, tini $t, tini-static $ts, dumb-init $d | $(ratio "$e" "$g") bare Go | ≤ bare Go + 0.3 | $(le "$e" "$(awk -v g="$g" 'BEGIN { print g + 0.3 }')") |"

	e=$(med "$OUT/term/entry-procfile.txt")
	d=$(med "$OUT/term/dumb-init.txt")
	echo "| S2 SIGTERM → all gone, 3 children, ms | $(f2 "$e") (Procfile); $(f2 "$(med "$OUT/term/entry.txt")") (\`-- sh\`) | dumb-init $(f2 "$d"), tini $(f2 "$(med "$OUT/term/tini.txt")") | $(ratio "$e" "$d") dumb-init | ≤ dumb-init | $(le "$e" "$d") |"

	e=$(sort -n "$OUT/term-wait/refused.txt" "$OUT/term-wait/silent.txt" | tail -1)
	echo "| SIGTERM during the wait (refused port; silent Postgres), slowest of $((2 * TERM_RUNS)), ms | $(f2 "$e") | – | – | ≤ 100 | $(le "$e" 100) |"

	read -r e _ _ _ en < <(stats "$OUT/detect-tcp/entry.txt")
	read -r t _ _ _ _ < <(stats "$OUT/detect-tcp/wait-for-it.txt")
	echo "| S3 detection latency, TCP listener, ms | $(f2 "$e") | wait-for-it $(f2 "$t") | $(ratio "$e" "$t") wait-for-it | ≤ 50 | $(le "$e" 50) |"
	read -r e _ _ _ en < <(stats "$OUT/detect-pg/entry.txt")
	read -r t _ _ _ tn < <(stats "$OUT/detect-pg/wait-for-it.txt")
	read -r g _ _ _ _ < <(stats "$OUT/detect-pg/pg_isready-loop.txt")
	echo "| S3 detection latency, real Postgres, ms (runs started early) | $(f2 "$e") ($en) | pg_isready loop $(f2 "$g"); wait-for-it $(f2 "$t") ($tn of $DETECT_RUNS early) | $(ratio "$e" "$g") pg_isready loop | ≤ 50, 0 early | $([ "$en" = 0 ] && le "$e" 50 || echo no) |"

	idle() { "$PROBE" stats <(cut -d' ' -f"$2" "$OUT/idle/$1.txt") | awk '{ printf "%.0f", $1 }'; }
	echo "| S4 idle $IDLE_WINDOW, 3 children: context switches (all threads) / CPU ms / RSS MiB (threads) | $(idle entry 3) / $(idle entry 1) / $(awk -v k="$(idle entry 4)" 'BEGIN { printf "%.1f", k / 1024 }') ($(idle entry 6)) | tini $(idle tini 3) / $(idle tini 1) / $(awk -v k="$(idle tini 4)" 'BEGIN { printf "%.1f", k / 1024 }'), dumb-init $(idle dumb-init 3) / $(idle dumb-init 1) / $(awk -v k="$(idle dumb-init 4)" 'BEGIN { printf "%.1f", k / 1024 }') | RSS $(ratio "$(idle entry 4)" "$(idle tini 4)") tini | 0 wakeups, RSS ≤ 8 MiB | $(awk -v c="$(idle entry 3)" -v k="$(idle entry 4)" 'BEGIN { print (c == 0 && k <= 8192) ? "yes" : "no" }') |"

	e=$(med "$OUT/reap/entry.txt")
	t=$(med "$OUT/reap/tini.txt")
	echo "| S5 reap $ZOMBIES orphaned zombies and exit, ms | $(f2 "$e") | tini $(f2 "$t"), dumb-init $(f2 "$(med "$OUT/reap/dumb-init.txt")") | $(ratio "$e" "$t") tini | ≤ tini | $(le "$e" "$t") |"

	echo "| S6 static stripped binary, MiB | $(awk -v s="${SIZE[entry]}" 'BEGIN { printf "%.2f", s / 1048576 }') | tini-static $(awk -v s="${SIZE[tini-static]}" 'BEGIN { printf "%.2f", s / 1048576 }'), bare Go $(awk -v s="${SIZE[bare-go]}" 'BEGIN { printf "%.2f", s / 1048576 }') | $(ratio "${SIZE[entry]}" "${SIZE[tini-static]}") tini-static | ≤ 8 MiB | $(le "${SIZE[entry]}" $((8 << 20))) |"

	for mode in $LOG_MODES; do
		dir=$OUT/logs/${mode/\//-}
		e=$(med "$dir/entry.lps")
		d=$(med "$dir/direct.lps")
		s=$(med "$dir/supervisord.lps")
		raw=0 goal="≥ ×0.5 direct, 0 cut"
		# Writes that cut lines: three writers straight into one file interleave their pieces;
		# entry reassembles them (slower, whole lines), so only "0 cut" is the goal there.
		[[ $mode == */raw ]] && raw=1 goal="0 cut"
		echo "| S7 log throughput 3 × $LOG_LINES lines, ${mode%/raw}-byte writes$([[ $mode == */raw ]] && echo " cutting lines"), k lines/s (cut lines, worst run) | $(awk -v v="$e" 'BEGIN { printf "%.0f", v / 1000 }') ($(maxcut "$dir/entry.cut")) | direct $(awk -v v="$d" 'BEGIN { printf "%.0f", v / 1000 }') ($(maxcut "$dir/direct.cut")), supervisord $(awk -v v="$s" 'BEGIN { printf "%.0f", v / 1000 }') ($(maxcut "$dir/supervisord.cut")) | $(ratio "$e" "$d") direct | $goal | $(awk -v a="$e" -v b="$d" -v c="$(maxcut "$dir/entry.cut")" -v raw="$raw" 'BEGIN { print ((raw || a >= 0.5 * b) && c == 0) ? "yes" : "no" }') |"
	done
}

report | tee "$OUT/all.md"
