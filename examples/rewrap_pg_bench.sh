#!/usr/bin/env bash
# `tresor rewrap --pg` over 1,000,000 rows (docs/benchmarks.md, "`tresor rewrap`"): a table
# `secrets (id bigint PRIMARY KEY, ct text)` of tresor:v1 ciphertexts, version 2 the latest,
# rewrapped in place against `tresor dev`, then counted by `tresor key census --pg`.
#
#   cargo build --release --bin tresor
#   .ci/with-postgres examples/rewrap_pg_bench.sh        # a throwaway cluster
#
# Environment: TRESOR (the binary, default target/release/tresor), CONNECTIONS (default 2),
# TRESOR_TEST_DATABASE_URL (set by .ci/with-postgres; its table `secrets` is replaced).
set -euo pipefail
T=${TRESOR:-target/release/tresor}
PSQL=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
DIR=$(mktemp -d /tmp/rewrap-pg.XXXXXX)
$T dev --dir "$DIR/dev" --listen 127.0.0.1:8339 > "$DIR/dev.out" 2>&1 &
DEV=$!
trap 'kill $DEV; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q '^export TRESOR_ADDR' "$DIR/dev.out" && break; sleep 0.2; done
eval "$(grep '^export TRESOR_' "$DIR/dev.out")"
$T key create dev/rw > /dev/null
python3 -c 'import base64
for i in range(1_000_000): print("{\"plaintext\":\"%s\"}" % base64.b64encode(b"value-%07d" % i).decode())' > "$DIR/plain.jsonl"
$T encrypt dev/rw --batch "$DIR/plain.jsonl" \
  | python3 -c 'import json,sys
for i,l in enumerate(sys.stdin): print("%d\t%s" % (i, json.loads(l)["ciphertext"]))' > "$DIR/values.tsv"
$T key rotate dev/rw > /dev/null
URL="$TRESOR_TEST_DATABASE_URL"
"$PSQL" "$URL" -q -c "DROP TABLE IF EXISTS secrets; DROP TABLE IF EXISTS tresor_rewrap_progress; CREATE TABLE secrets (id bigint PRIMARY KEY, ct text NOT NULL)"
"$PSQL" "$URL" -q -c "\\copy secrets FROM '$DIR/values.tsv'"
"$PSQL" "$URL" -q -c "VACUUM ANALYZE secrets"
uptime
/usr/bin/time $T rewrap dev/rw --pg "$URL" --table secrets --column ct --connections ${CONNECTIONS:-2} | tee "$DIR/summary.json"
/usr/bin/time $T key census dev/rw --pg "$URL" --table secrets --column ct
