#!/usr/bin/env bash
# Runs every test of entry: vet, the unit and integration tests with -race against real
# PostgreSQL, RabbitMQ and Redis, and a short run of each fuzz target. Installs what a fresh
# machine lacks (Debian packages, Go modules) first.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests run: gcc for -race, the servers and their clients, the Django stack from Debian,
# the inits compared with, unshare and script, the benchmarks' peers, and the Docker tier's
# engine, Compose and the debootstrap its base images are made with (integration/docker_test.go
# starts dockerd itself if none is running), and HAProxy, the load balancer of the drain test.
packages=(gcc libc6-dev postgresql redis-server redis-tools rabbitmq-server python3 python3-yaml
	python3-django python3-psycopg2 python3-redis python3-celery gunicorn tini dumb-init
	util-linux bsdutils procps psmisc supervisor hyperfine docker.io docker-compose debootstrap haproxy)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The machine starts these before any session; start whichever is down (same commands).
pg_isready -q -h 127.0.0.1 -p 5432 ||
	pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 ||
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
	rabbitmq-server -detached
	for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
fi

go mod download
go vet ./...
go test -race -count=1 -timeout 20m ./...

# Each fuzz target for a fixed number of runs: enough to catch a panic on the seed corpus and
# nearby. A count, not a duration: with a time-based -fuzztime, Go 1.26's fuzz coordinator can
# fail a passing target with "context deadline exceeded". A failing run prints its output.
fuzzruns=${ENTRY_FUZZ_RUNS:-2000}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "${fuzzruns}x" "$pkg" 2>&1); then
			echo "fuzz FAILED: $pkg $target"
			echo "$out"
			exit 1
		fi
		echo "fuzz ok: $pkg $target"
	done
done
