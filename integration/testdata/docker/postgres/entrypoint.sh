#!/bin/sh
# First start: initdb with the user, password and database of the environment, password
# authentication from the network; then postgres itself as PID 1, as the postgres user.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
	password=$(cat "$POSTGRES_PASSWORD_FILE")
else
	password=${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}
fi
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile=$(mktemp)
	printf '%s' "$password" >"$pwfile"
	chown postgres "$pwfile"
	as_postgres "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	if [ "$db" != postgres ]; then
		echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | as_postgres "$bin/postgres" --single -D "$PGDATA" -j postgres >/dev/null
	fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$PGDATA" \
	-c listen_addresses='*' -c unix_socket_directories=/run/postgresql
