#!/usr/bin/env bash
# Load benchmark: nginx as a plain reverse proxy (the baseline) and idgate
# forwarding a signed-in person's requests, in front of the same upstream
# (an nginx answering a small static body), measured in one run with wrk.
# Prints requests/s, p99 latency and CPU time per request of each proxy
# process, and the idgate/nginx ratios.
#
#   benches/load.sh [--variant plain|xff] [duration-seconds] [connections]
#
# Variants: `plain` (default) straight from the client; `xff` behind a load
# balancer: every request carries X-Forwarded-For and X-Forwarded-Proto from
# a trusted proxy (idgate: server.trusted_proxies; nginx: the realip module,
# the chain extended), as most deployments run.
#   PERF_DATA=/tmp/idgate.perf benches/load.sh 10 32   # also profile idgate
#   ROUNDS=5 benches/load.sh                            # more rounds (default 3)
#
# nginx and idgate are measured in turn, ROUNDS times, and the round with
# the median CPU ratio is printed, with CPU split into user and kernel time.
#
# With PERF_DATA set, one more signed-in run (not in the table) is recorded
# with `perf record --call-graph dwarf -p <idgate>` into that file; read it
# with `perf report -i FILE --no-children --sort symbol`.
#
# The authenticated run is the real hot path: idgate signs in once through
# its OpenID Connect login at a local Entra-shaped provider
# (`idgate dev-provider`, made-up users, loopback only), then every wrk
# request carries that session cookie and is forwarded with the identity
# headers and the signed assertion. Any answer other than 2xx fails the
# benchmark. The provider's JWKS fetch count is read before and after the
# run: under steady load it must not move. A run without a cookie (every
# request answered 401 by idgate itself) is shown for reference.
#
# Each proxy gets one worker (idgate: server.threads = 1, nginx:
# worker_processes 1) and no access log, so the numbers compare the data
# paths. Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

VARIANT=plain
if [ "${1:-}" = "--variant" ]; then
  VARIANT="${2:-}"
  shift 2 || true
fi
case "$VARIANT" in
  plain) PX_EXTRA=""; GW_EXTRA=""; EXTRA_HEADERS=() ;;
  xff)
    PX_EXTRA='set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;'
    GW_EXTRA='trusted_proxies = ["127.0.0.1/32"]'
    EXTRA_HEADERS=(-H "X-Forwarded-For: 203.0.113.7" -H "X-Forwarded-Proto: https")
    ;;
  *) echo "load.sh: --variant plain or xff (log, tls and h2 are not built yet)" >&2; exit 2 ;;
esac
DURATION="${1:-10}"
CONNS="${2:-32}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
command -v wrk >/dev/null || { echo "wrk is missing: scripts/setup --test installs it" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is missing: scripts/setup --test installs it" >&2; exit 1; }

cargo build --release --locked --bin idgate >&2
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null || true
  [ -f "$WORK/px.pid" ] && kill "$(cat "$WORK/px.pid")" 2>/dev/null || true
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "load.sh: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT="$(free_port)"; NGX_PORT="$(free_port)"; GW_PORT="$(free_port)"; ADM_PORT="$(free_port)"; IDP_PORT="$(free_port)"

nginx_conf() { # name port body
  cat > "$WORK/$1.conf" <<CONF
daemon on;
worker_processes 1;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body;
  proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fcgi;
  uwsgi_temp_path $WORK/$1-uwsgi;
  scgi_temp_path $WORK/$1-scgi;
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    $3
  }
}
CONF
  "$NGINX" -c "$WORK/$1.conf" -p "$WORK"
}
nginx_conf up "$UP_PORT" 'location / { default_type text/plain; return 200 "hello from the upstream\n"; }'
if [ "$VARIANT" = xff ]; then
  nginx_conf px "$NGX_PORT" "$PX_EXTRA"' location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto; proxy_set_header X-Forwarded-Host $host; }'
else
  nginx_conf px "$NGX_PORT" 'location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }'
fi

# The local identity provider, with idgate's callback registered.
TENANT="11111111-2222-3333-4444-555555555555"
CLIENT_ID="idgate-bench"
CLIENT_SECRET="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
IDP="http://127.0.0.1:$IDP_PORT"
GW="http://127.0.0.1:$GW_PORT"
target/release/idgate dev-provider --listen "127.0.0.1:$IDP_PORT" \
  --client "$CLIENT_ID:$CLIENT_SECRET:$GW/oauth/login/bench/callback" >"$WORK/idp.out" 2>"$WORK/idp.err" &
PIDS+=($!)

cat > "$WORK/idgate.toml" <<CONF
[server]
listen = "127.0.0.1:$GW_PORT"
public_url = "$GW"
threads = 1
$GW_EXTRA
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[admin]
listen = "127.0.0.1:$ADM_PORT"
[database]
url = "sqlite://$WORK/idgate.db"
[log]
level = "warn"

[[providers]]
ids = { provider_id = "bench" }
name = "Bench Entra (local dev-provider)"
allow_registrations = true
allowed_email_domains = ["example.com"]
[providers.configuration.oidc]
client_id = "$CLIENT_ID"
client_secret = "$CLIENT_SECRET"
provider_url = "$IDP/$TENANT/v2.0"
CONF
for _ in $(seq 1 100); do # the provider generates an RSA key first
  curl -sf "$IDP/_counters" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "$IDP/_counters" >/dev/null || fail "dev-provider did not start: $(cat "$WORK/idp.err")"
target/release/idgate serve --config "$WORK/idgate.toml" 2>"$WORK/idgate.err" &
PIDS+=($!)
GW_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ADM_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$ADM_PORT/readyz" >/dev/null || fail "idgate is not ready: $(cat "$WORK/idgate.err")"

# Sign in once, as a browser would, with the provider's non-interactive mode.
JAR="$WORK/jar.txt"
location() { # url: the Location of a 302 answer, requested with the cookie jar
  local out code
  out=$(curl -s -o /dev/null -b "$JAR" -c "$JAR" -w '%{http_code} %{redirect_url}' "$1")
  code=${out%% *}
  [ "$code" = 302 ] || fail "expected 302 from ${1%%\?*}, got $code"
  echo "${out#* }"
}
AUTHORIZE=$(location "$GW/oauth/login/bench")
case "$AUTHORIZE" in "$IDP/"*) ;; *) fail "login start did not redirect to the provider: $AUTHORIZE" ;; esac
AUTHORIZE="${AUTHORIZE/response_mode=form_post/response_mode=query}&auto=1&email=bench%40example.com"
CALLBACK=$(location "$AUTHORIZE")
case "$CALLBACK" in "$GW/oauth/login/bench/callback?"*) ;; *) fail "provider did not redirect to the callback: $CALLBACK" ;; esac
location "$CALLBACK" >/dev/null
SESSION=$(awk '$6 == "idgate_session" {print $7}' "$JAR")
[ -n "$SESSION" ] || fail "no idgate_session cookie after the callback"
COOKIE="Cookie: idgate_session=$SESSION"
code=$(curl -s -o "$WORK/probe.body" -w '%{http_code}' -H "$COOKIE" "$GW/")
[ "$code" = 200 ] || fail "a request with the session cookie got $code: $(head -c 300 "$WORK/probe.body")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$GW/")
[ "$code" = 401 ] || fail "a request without a session got $code, not 401"

TICK=$(getconf CLK_TCK)
cpu_ticks() { # pids...: "utime stime" of them all, summed
  local u=0 s=0 pu ps
  for p in "$@"; do
    read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + pu)); s=$((s + ps))
  done
  echo "$u $s"
}
nginx_pids() { pgrep -f "nginx: .*$WORK/px.conf" ; pgrep -P "$(cat "$WORK/px.pid")"; }
jwks_fetches() { curl -sf "$IDP/_counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])'; }

WRK_ERRORS=0
measure() { # name expected(2xx|401) url header pids...: sets RESULT="rps p99 cpu user sys"
  local name="$1" expect="$2" url="$3" header="$4"; shift 4
  local hargs=("${EXTRA_HEADERS[@]}")
  [ -n "$header" ] && hargs+=(-H "$header")
  wrk -t1 -c"$CONNS" -d2s "${hargs[@]}" "$url" >/dev/null # warm-up
  local before after out
  before=$(cpu_ticks "$@")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${hargs[@]}" "$url")
  after=$(cpu_ticks "$@")
  local rps p99 total non2xx sockerr
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
  sockerr=$(awk '/Socket errors/ {print}' <<<"$out")
  [ -z "$sockerr" ] || echo "warning: $name: $sockerr" >&2
  if [ "$expect" = 2xx ] && [ -n "$non2xx" ]; then
    echo "FAILED: $name: $non2xx of $total answers were not 2xx" >&2
    WRK_ERRORS=$((WRK_ERRORS + non2xx))
  elif [ "$expect" = 401 ] && [ "${non2xx:-0}" != "$total" ]; then
    echo "FAILED: $name: only ${non2xx:-0} of $total answers were refused" >&2
    WRK_ERRORS=$((WRK_ERRORS + 1))
  fi
  local u0 s0 u1 s1
  read -r u0 s0 <<<"$before"
  read -r u1 s1 <<<"$after"
  RESULT="$rps $p99 $(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v tick="$TICK" -v n="$total" \
    'BEGIN { f = 1e6 / tick / n; printf "%.1f %.1f %.1f", (u + s) * f, u * f, s * f }')"
}

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}' <<<"$1"; }

NGX_PIDS=$(nginx_pids | sort -u | tr '\n' ' ')
# The machine is shared and noisy: nginx and idgate are measured in turn,
# ROUNDS times, and the round with the median CPU ratio is reported.
ROUNDS="${ROUNDS:-3}"
KEYS_BEFORE=$(jwks_fetches)
ROWS=()
for round in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2086
  measure nginx 2xx "http://127.0.0.1:$NGX_PORT/" "" $NGX_PIDS
  n="$RESULT"
  measure "idgate (signed in)" 2xx "$GW/" "$COOKIE" "$GW_PID"
  g="$RESULT"
  ratio=$(awk -v a="${g#* * }" -v b="${n#* * }" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.3f", x[1] / y[1] }')
  ROWS+=("$ratio|$n|$g")
  echo "round $round: CPU ratio idgate/nginx ${ratio}x" >&2
done
KEYS_AFTER=$(jwks_fetches)
measure "idgate (no session)" 401 "$GW/" "" "$GW_PID"
read -r u_rps u_p99 u_cpu u_user u_sys <<<"$RESULT"
MEDIAN=$(printf '%s\n' "${ROWS[@]}" | sort -t'|' -k1,1n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
IFS='|' read -r _ n g <<<"$MEDIAN"
read -r n_rps n_p99 n_cpu n_user n_sys <<<"$n"
read -r g_rps g_p99 g_cpu g_user g_sys <<<"$g"

n_p99ms=$(to_ms "$n_p99"); g_p99ms=$(to_ms "$g_p99"); u_p99ms=$(to_ms "$u_p99")
echo
echo "variant $VARIANT; wrk: 1 thread, $CONNS connections, ${DURATION}s per run; one worker per proxy; $(nproc) cores"
echo "median of $ROUNDS rounds by CPU ratio: $(printf '%s ' "${ROWS[@]%%|*}")"
printf '%-28s %12s %10s %16s %12s %12s\n' "proxy" "requests/s" "p99 (ms)" "CPU µs/request" "user µs" "kernel µs"
printf '%-28s %12s %10s %16s %12s %12s\n' "nginx (plain pass-through)" "$n_rps" "$n_p99ms" "$n_cpu" "$n_user" "$n_sys"
printf '%-28s %12s %10s %16s %12s %12s\n' "idgate (signed in)" "$g_rps" "$g_p99ms" "$g_cpu" "$g_user" "$g_sys"
awk -v a="$g_rps" -v b="$n_rps" -v c="$g_p99ms" -v d="$n_p99ms" -v e="$g_cpu" -v f="$n_cpu" -v gu="$g_user" -v nu="$n_user" -v gs="$g_sys" -v ns="$n_sys" \
  'BEGIN { printf "%-28s %11.2fx %9.2fx %15.2fx %11.2fx %11.2fx\n", "ratio idgate/nginx", a/b, c/d, e/f, gu/nu, gs/ns }'
printf '%-28s %12s %10s %16s %12s %12s\n' "idgate (no session, 401)" "$u_rps" "$u_p99ms" "$u_cpu" "$u_user" "$u_sys"
echo "JWKS fetches by idgate at the provider: $KEYS_BEFORE before the signed-in runs, $KEYS_AFTER after"

if [ -n "${PERF_DATA:-}" ]; then
  command -v perf >/dev/null || fail "PERF_DATA is set but perf is missing (apt-get install linux-perf)"
  perf record -F 1999 --call-graph dwarf,32768 -o "$PERF_DATA" -p "$GW_PID" -- sleep "$DURATION" 2>"$WORK/perf.err" &
  PERF_PID=$!
  sleep 0.5
  wrk -t1 -c"$CONNS" -d"$((DURATION > 2 ? DURATION - 1 : 1))s" -H "$COOKIE" "$GW/" >"$WORK/perf-wrk.out"
  wait "$PERF_PID" || fail "perf record failed: $(cat "$WORK/perf.err")"
  echo "profile of the signed-in path: $PERF_DATA ($(awk '/^Requests\/sec/ {print $2}' "$WORK/perf-wrk.out") requests/s while recording)"
fi

[ "$KEYS_BEFORE" = "$KEYS_AFTER" ] || fail "idgate fetched the JWKS during steady-state load"
[ "$WRK_ERRORS" = 0 ] || fail "some answers were not what the run expects (see FAILED above)"
