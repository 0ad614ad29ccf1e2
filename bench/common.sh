# Sourced by the bench scripts, from the repository root, with OUT set.

# clean_env drops whatever in the caller's environment could give entry something to wait
# for or change how it runs.
clean_env() {
	while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(ENTRY_|DATABASE_URL|CELERY_BROKER_URL|REDIS_URL|POSTGRES_)' || true)
}

# build_bins builds entry as Dockerfile.example does, and the probe helper, and sets ENTRY
# and PROBE to their paths.
build_bins() {
	rm -rf "$OUT"
	mkdir -p "$OUT" bench/out/bin
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bench/out/bin/entry ./cmd/entry
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bench/out/bin/probe ./bench/probe
	ENTRY=$PWD/bench/out/bin/entry
	PROBE=$PWD/bench/out/bin/probe
}
