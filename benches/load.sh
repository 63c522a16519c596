#!/usr/bin/env bash
# Load benchmark: nginx as a reverse proxy (the baseline) and idgate
# forwarding a signed-in person's requests, in front of the same upstream
# (an nginx answering a small static body), measured in one run. Prints
# requests/s, p99 latency and CPU time per request of each proxy process,
# and the idgate/nginx ratios.
#
#   benches/load.sh [--variant NAME[,NAME…]|all] [duration-seconds] [connections]
#
# Variants, each against nginx configured to do the same:
#   plain         HTTP/1.1 straight from the client, no access log (default)
#   log           the access log on, written to a file (nginx: access_log
#                 with the same fields, buffered as idgate's is)
#   xff           behind a load balancer: every request carries
#                 X-Forwarded-For and X-Forwarded-Proto from a trusted proxy
#                 (idgate: server.trusted_proxies; nginx: realip, the chain
#                 extended)
#   tls           TLS 1.3 terminated by each, keep-alive (wrk over https)
#   tls-new-conn  a new TLS connection (full handshake) for every request
#   h2            HTTP/2 over TLS (h2load, one stream per connection at a
#                 time)
#   paced         plain, but each connection waits PACE_MS (default 50)
#                 between requests, as a browser does, over eight times the
#                 connections: a connection is idle between its requests
#   all           every variant above, one after the other, and a table
#
# Memory: the peak resident memory of each proxy under each variant's load,
# and what an idle keep-alive connection costs: IDLE connections (default
# 10,000; IDLE=0 skips it), each having carried one request, held open
# against each proxy (benches/idle_conns.py), in IDLE_ROUNDS rounds
# (default 3).
#
#   ROUNDS=5 benches/load.sh --variant all 8 32
#   PERF_DATA=/tmp/idgate.perf benches/load.sh 10 32   # also profile idgate
#   ROUNDS=1 IDLE=0 CALLGRIND=8 benches/load.sh --variant plain,h2 2 32
#                                        # instructions per request, quickly
#
# nginx and idgate are measured in turn, ROUNDS times (default 5), and the
# round with the median CPU ratio is printed, with CPU split into user and
# kernel time.
#
# With CALLGRIND=seconds set, after everything above, each variant's
# signed-in load runs once more for that long with idgate under
# valgrind's callgrind, and the instructions idgate ran per request are
# printed: a count that does not move with the machine's noise, for
# comparing two versions of idgate (valgrind runs it some 50 times
# slower, so it is no measure against nginx; the connections' set-up is
# spread over the run's requests, so compare runs of the same length).
# With CALLGRIND_KEEP=dir as well, each variant's profile is kept there as
# callgrind.<variant>, to read with `callgrind_annotate [--inclusive=yes]`.
#
# With PERF_DATA set, one more signed-in run of the first variant (not in
# the table) is recorded with `perf record --call-graph dwarf -p <idgate>`
# into that file; read it with
# `perf report -i FILE --no-children --sort symbol`.
#
# The authenticated run is the real hot path: idgate signs in once through
# its OpenID Connect login at a local Entra-shaped provider
# (`idgate dev-provider`, made-up users, loopback only), then every request
# carries that session cookie and is forwarded with the identity headers and
# the signed assertion; idgate is restarted with each variant's settings on
# the same database, so the session carries over. Any answer other than 2xx
# fails the benchmark. The provider's JWKS fetch count is read before and
# after the runs: under steady load it must not move. A run without a cookie
# (every request answered 401 by idgate itself) is shown for reference.
#
# Each proxy gets one worker (idgate: server.threads = 1, nginx:
# worker_processes 1), so the numbers compare the data paths. Everything
# runs on loopback and stops by itself.
set -euo pipefail
# Where the caller named it, before the working directory changes.
if [ -n "${CALLGRIND_KEEP:-}" ]; then
  [ -d "$CALLGRIND_KEEP" ] || { echo "load.sh: CALLGRIND_KEEP names no directory: '$CALLGRIND_KEEP'" >&2; exit 2; }
  [ "${CALLGRIND:-0}" != 0 ] || { echo "load.sh: CALLGRIND_KEEP keeps what CALLGRIND=seconds records; set both" >&2; exit 2; }
  CALLGRIND_KEEP="$(cd "$CALLGRIND_KEEP" && pwd)"
fi
cd "$(dirname "$0")/.."

ALL_VARIANTS=(plain log xff tls tls-new-conn h2 paced)
VARIANTS=(plain)
if [ "${1:-}" = "--variant" ]; then
  case "${2:-}" in
    all) VARIANTS=("${ALL_VARIANTS[@]}") ;;
    *) IFS=',' read -r -a VARIANTS <<<"${2:-}" ;;
  esac
  shift 2 || true
fi
for v in "${VARIANTS[@]}"; do
  case " ${ALL_VARIANTS[*]} " in
    *" $v "*) ;;
    *) echo "load.sh: unknown variant '$v': one or more of ${ALL_VARIANTS[*]} (comma-separated), or all" >&2; exit 2 ;;
  esac
done
DURATION="${1:-10}"
CONNS="${2:-32}"
ROUNDS="${ROUNDS:-5}"
case "${CALLGRIND:-0}" in
  '' | *[!0-9]*) echo "load.sh: CALLGRIND is a number of seconds, not '$CALLGRIND'" >&2; exit 2 ;;
esac
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
command -v wrk >/dev/null || { echo "wrk is missing: scripts/setup --test installs it" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is missing" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is missing: scripts/setup --test installs it" >&2; exit 1; }
case " ${VARIANTS[*]} " in
  *" h2 "*) command -v h2load >/dev/null || { echo "h2load is missing: scripts/setup --test installs it (nghttp2-client)" >&2; exit 1; } ;;
esac

# Room for the idle-connection measurement's 10,000 sockets in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --locked --bin idgate >&2
WORK="$(mktemp -d)"
PIDS=()
GW_PID=""
cleanup() {
  for p in "${PIDS[@]}" $GW_PID; do kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}" $GW_PID; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "load.sh: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT="$(free_port)"; NGX_PORT="$(free_port)"; GW_PORT="$(free_port)"; ADM_PORT="$(free_port)"; IDP_PORT="$(free_port)"

# One certificate for both proxies' TLS variants (ECDSA P-256, TLS 1.3).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

nginx_conf() { # name port http-extra server-body
  cat > "$WORK/$1.conf" <<CONF
daemon on;
worker_processes 1;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body;
  proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fcgi;
  uwsgi_temp_path $WORK/$1-uwsgi;
  scgi_temp_path $WORK/$1-scgi;
  # No connection is closed after a number of requests (nginx's default is
  # 1000): h2load does not reconnect, and idgate closes none.
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 1000000; }
  $3
  server {
    $4
  }
}
CONF
  "$NGINX" -c "$WORK/$1.conf" -p "$WORK"
}
nginx_conf up "$UP_PORT" "" "listen 127.0.0.1:$UP_PORT; location / { default_type text/plain; return 200 \"hello from the upstream\n\"; }"

PASS='proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host;'
# X25519 key exchange, as idgate's rustls (ring) offers first.
TLS_CONF="ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.3; ssl_ecdh_curve X25519;"
# The variant's nginx (http-extra, server body), idgate settings, client
# scheme and extra request headers.
variant() {
  NGX_HTTP=""; GW_SERVER=""; GW_LOG='level = "warn"'; SCHEME=http; EXTRA_HEADERS=(); TOOL=wrk
  LOAD_CONNS="$CONNS"; WRK_SCRIPT=()
  local listen="listen 127.0.0.1:$NGX_PORT;"
  local fwd='proxy_set_header X-Forwarded-For $remote_addr;'
  case "$1" in
    plain) ;;
    paced)
      echo "function delay() return ${PACE_MS:-50} end" >"$WORK/paced.lua"
      WRK_SCRIPT=(-s "$WORK/paced.lua")
      LOAD_CONNS=$((CONNS * 8))
      ;;
    log)
      NGX_HTTP="log_format same '\$time_iso8601 \$request_method \$uri \$status \$remote_addr \$remote_user \$upstream_response_time \$request_time'; access_log $WORK/px-access.log same buffer=32k flush=1s;"
      GW_LOG='level = "warn,idgate::access=info"'
      ;;
    xff)
      listen="$listen set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;"
      fwd='proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto; proxy_set_header X-Forwarded-Host $host;'
      GW_SERVER='trusted_proxies = ["127.0.0.1/32"]'
      EXTRA_HEADERS=(-H "X-Forwarded-For: 203.0.113.7" -H "X-Forwarded-Proto: https")
      ;;
    tls | tls-new-conn)
      listen="listen 127.0.0.1:$NGX_PORT ssl; $TLS_CONF"
      GW_SERVER="tls = { cert = \"$WORK/cert.pem\", key = \"$WORK/key.pem\" }"
      SCHEME=https
      if [ "$1" = tls-new-conn ]; then EXTRA_HEADERS=(-H "Connection: close"); fi
      ;;
    h2)
      listen="listen 127.0.0.1:$NGX_PORT ssl http2; $TLS_CONF"
      GW_SERVER="tls = { cert = \"$WORK/cert.pem\", key = \"$WORK/key.pem\" }"
      SCHEME=https
      TOOL=h2load
      ;;
  esac
  NGX_SERVER="$listen location / { $PASS $fwd }"
}

# The local identity provider, with idgate's callback registered.
TENANT="11111111-2222-3333-4444-555555555555"
CLIENT_ID="idgate-bench"
CLIENT_SECRET="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
IDP="http://127.0.0.1:$IDP_PORT"
GW="http://127.0.0.1:$GW_PORT"
target/release/idgate dev-provider --listen "127.0.0.1:$IDP_PORT" \
  --client "$CLIENT_ID:$CLIENT_SECRET:$GW/oauth/login/bench/callback" >"$WORK/idp.out" 2>"$WORK/idp.err" &
PIDS+=($!)
for _ in $(seq 1 100); do # the provider generates an RSA key first
  curl -sf "$IDP/_counters" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "$IDP/_counters" >/dev/null || fail "dev-provider did not start: $(cat "$WORK/idp.err")"

start_idgate() { # variant settings are in GW_SERVER and GW_LOG
  if [ -n "$GW_PID" ]; then
    kill "$GW_PID" && wait "$GW_PID" 2>/dev/null || true
  fi
  cat > "$WORK/idgate.toml" <<CONF
[server]
listen = "127.0.0.1:$GW_PORT"
public_url = "$GW"
threads = 1
$GW_SERVER
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[admin]
listen = "127.0.0.1:$ADM_PORT"
[database]
url = "sqlite://$WORK/idgate.db"
[log]
$GW_LOG

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
  ${GW_WRAP:-} target/release/idgate serve --config "$WORK/idgate.toml" 2>"$WORK/idgate.err" &
  GW_PID=$!
  for _ in $(seq 1 600); do # up to a minute: under callgrind it starts slowly
    curl -sf "http://127.0.0.1:$ADM_PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$ADM_PORT/readyz" >/dev/null || fail "idgate is not ready: $(cat "$WORK/idgate.err")"
}

start_nginx() { # the variant's proxy nginx, replacing the previous one
  if [ -f "$WORK/px.pid" ]; then
    kill "$(cat "$WORK/px.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$WORK/px.pid" ] || break; sleep 0.1; done
  fi
  nginx_conf px "$NGX_PORT" "$NGX_HTTP" "$NGX_SERVER"
  for _ in $(seq 1 50); do [ -f "$WORK/px.pid" ] && pgrep -P "$(cat "$WORK/px.pid")" >/dev/null && break; sleep 0.1; done
  pgrep -P "$(cat "$WORK/px.pid")" >/dev/null || fail "nginx did not start its worker: $(cat "$WORK/px.err")"
}

# Sign in once, as a browser would, with the provider's non-interactive mode.
variant plain
start_idgate
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

TICK=$(getconf CLK_TCK)
cpu_ticks() { # pids...: "utime stime" of them all, summed
  local u=0 s=0 pu ps
  for p in "$@"; do
    read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + pu)); s=$((s + ps))
  done
  echo "$u $s"
}
nginx_pids() { { pgrep -f "nginx: .*$WORK/px.conf"; pgrep -P "$(cat "$WORK/px.pid")"; } | sort -u | tr '\n' ' '; }
nginx_worker() { pgrep -P "$(cat "$WORK/px.pid")" | head -1; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
peak_mib() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
jwks_fetches() { curl -sf "$IDP/_counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])'; }

# One load run: sets LOAD="requests rps p99 non2xx errors" (p99 as wrk prints it).
load() { # seconds url header
  local secs="$1" url="$2" header="$3" out
  local hargs=("${EXTRA_HEADERS[@]}")
  [ -n "$header" ] && hargs+=(-H "$header")
  if [ "$TOOL" = h2load ]; then
    rm -f "$WORK/h2.log"
    out=$(h2load -t1 -c"$CONNS" -m1 -D"$secs" "${hargs[@]}" --log-file="$WORK/h2.log" "$url")
    local total ok rps p99
    total=$(awk '/^requests:/ {print $6}' <<<"$out")
    ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    p99=$(awk -F'\t' '{print $3}' "$WORK/h2.log" | sort -n | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3fms", v[i]/1000}')
    LOAD="$total $rps $p99 $((total - ok)) $(awk '/^requests:/ {print $12 + $14}' <<<"$out")"
  else
    out=$(wrk -t1 -c"$LOAD_CONNS" -d"${secs}s" --timeout "${WRK_TIMEOUT:-2s}" --latency "${WRK_SCRIPT[@]}" "${hargs[@]}" "$url")
    local total rps p99 non2xx sockerr
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
    sockerr=$(awk '/Socket errors/ {print}' <<<"$out")
    [ -z "$sockerr" ] || echo "warning: $sockerr" >&2
    LOAD="$total $rps $p99 ${non2xx:-0} 0"
  fi
}

WRK_ERRORS=0
measure() { # name expected(2xx|401) url header pids...: sets RESULT="rps p99 cpu user sys"
  local name="$1" expect="$2" url="$3" header="$4"; shift 4
  load 2 "$url" "$header" # warm-up
  local before after
  before=$(cpu_ticks "$@")
  load "$DURATION" "$url" "$header"
  after=$(cpu_ticks "$@")
  local total rps p99 bad errors
  read -r total rps p99 bad errors <<<"$LOAD"
  [ "${total:-0}" -gt 0 ] || fail "$name: no request was answered"
  if [ "$expect" = 2xx ] && { [ "$bad" != 0 ] || [ "$errors" != 0 ]; }; then
    echo "FAILED: $name: $bad of $total answers were not 2xx ($errors failed)" >&2
    WRK_ERRORS=$((WRK_ERRORS + bad + errors))
  elif [ "$expect" = 401 ] && [ "$bad" != "$total" ]; then
    echo "FAILED: $name: only $bad of $total answers were refused" >&2
    WRK_ERRORS=$((WRK_ERRORS + 1))
  fi
  local u0 s0 u1 s1
  read -r u0 s0 <<<"$before"
  read -r u1 s1 <<<"$after"
  RESULT="$rps $p99 $(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v tick="$TICK" -v n="$total" \
    'BEGIN { f = 1e6 / tick / n; printf "%.1f %.1f %.1f", (u + s) * f, u * f, s * f }')"
}

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

KEYS_BEFORE=$(jwks_fetches)
SUMMARY=()
for v in "${VARIANTS[@]}"; do
  variant "$v"
  start_nginx
  start_idgate
  NGX_PIDS=$(nginx_pids)
  NGX_URL="$SCHEME://127.0.0.1:$NGX_PORT/"
  GW_URL="$SCHEME://127.0.0.1:$GW_PORT/"
  code=$(curl -sk -o "$WORK/probe.body" -w '%{http_code}' "${EXTRA_HEADERS[@]}" -H "$COOKIE" "$GW_URL")
  [ "$code" = 200 ] || fail "$v: a request with the session cookie got $code: $(head -c 300 "$WORK/probe.body")"
  # The machine is shared and noisy: nginx and idgate are measured in turn,
  # ROUNDS times, and the round with the median CPU ratio is reported.
  ROWS=()
  for round in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    measure nginx 2xx "$NGX_URL" "" $NGX_PIDS
    n="$RESULT"
    measure "idgate (signed in)" 2xx "$GW_URL" "$COOKIE" "$GW_PID"
    g="$RESULT"
    r=$(ratio "$(cut -d' ' -f3 <<<"$g")" "$(cut -d' ' -f3 <<<"$n")")
    ROWS+=("$r|$n|$g")
    echo "$v, round $round: CPU ratio idgate/nginx ${r}x" >&2
  done
  measure "idgate (no session)" 401 "$GW_URL" "" "$GW_PID"
  read -r u_rps u_p99 u_cpu u_user u_sys <<<"$RESULT"
  MEDIAN=$(printf '%s\n' "${ROWS[@]}" | sort -t'|' -k1,1n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
  IFS='|' read -r _ n g <<<"$MEDIAN"
  read -r n_rps n_p99 n_cpu n_user n_sys <<<"$n"
  read -r g_rps g_p99 g_cpu g_user g_sys <<<"$g"
  n_p99ms=$(to_ms "$n_p99"); g_p99ms=$(to_ms "$g_p99"); u_p99ms=$(to_ms "$u_p99")
  if [ "$TOOL" = h2load ]; then tool="h2load: 1 thread, $CONNS connections, 1 stream each"; else tool="wrk: 1 thread, $LOAD_CONNS connections"; fi
  [ "${#WRK_SCRIPT[@]}" = 0 ] || tool="$tool, each waiting ${PACE_MS:-50} ms between requests"
  echo
  echo "variant $v; $tool, ${DURATION}s per run; one worker per proxy; $(nproc) cores"
  echo "median of $ROUNDS rounds by CPU ratio: $(printf '%s ' "${ROWS[@]%%|*}")"
  printf '%-28s %12s %10s %16s %12s %12s\n' "proxy" "requests/s" "p99 (ms)" "CPU µs/request" "user µs" "kernel µs"
  printf '%-28s %12s %10s %16s %12s %12s\n' "nginx (same work)" "$n_rps" "$n_p99ms" "$n_cpu" "$n_user" "$n_sys"
  printf '%-28s %12s %10s %16s %12s %12s\n' "idgate (signed in)" "$g_rps" "$g_p99ms" "$g_cpu" "$g_user" "$g_sys"
  awk -v a="$g_rps" -v b="$n_rps" -v c="$g_p99ms" -v d="$n_p99ms" -v e="$g_cpu" -v f="$n_cpu" -v gu="$g_user" -v nu="$n_user" -v gs="$g_sys" -v ns="$n_sys" \
    'BEGIN { printf "%-28s %11.2fx %9.2fx %15.2fx %11.2fx %11.2fx\n", "ratio idgate/nginx", a/b, c/d, e/f, (nu > 0 ? gu/nu : 0), (ns > 0 ? gs/ns : 0) }'
  printf '%-28s %12s %10s %16s %12s %12s\n' "idgate (no session, 401)" "$u_rps" "$u_p99ms" "$u_cpu" "$u_user" "$u_sys"
  n_peak=$(peak_mib "$(nginx_worker)"); g_peak=$(peak_mib "$GW_PID")
  echo "peak RSS under this load: nginx worker $n_peak MiB, idgate $g_peak MiB"
  echo
  SUMMARY+=("$(printf '%-14s %10s %10s %10s %10s %8.2fx %8.2fx %8s %8s' "$v" "$n_cpu" "$g_cpu" "$n_p99ms" "$g_p99ms" "$(ratio "$g_cpu" "$n_cpu")" "$(ratio "$g_p99ms" "$n_p99ms")" "$n_peak" "$g_peak")")
done
KEYS_AFTER=$(jwks_fetches)

# Memory of idle keep-alive connections: IDLE of them (default 10,000), each
# having carried one signed-in request, held open against each proxy in its
# plain configuration; the growth of resident memory per connection. The
# crowd arriving leaves memory scattered by chance, so this is measured
# IDLE_ROUNDS times (default 3), each proxy started afresh, and the round
# with the median ratio is printed.
IDLE="${IDLE:-10000}"
IDLE_ROUNDS="${IDLE_ROUNDS:-3}"
if [ "$IDLE" -gt 0 ]; then
  variant plain
  start_nginx
  start_idgate
  idle_kib() { # port pid cookie: KiB of resident memory per idle connection
    local before after line
    before=$(rss_kib "$2")
    coproc IDLER { python3 benches/idle_conns.py 127.0.0.1 "$1" "$IDLE" "$3"; }
    read -r -t 300 line <&"${IDLER[0]}" || true
    [ "$line" = ready ] || fail "could not hold $IDLE idle connections on port $1 (nginx $NGX_PORT, idgate $GW_PORT): $(tail -n3 "$WORK/px.err" "$WORK/up.err" "$WORK/idgate.err" 2>&1)"
    sleep 2 # past idgate's HOLD_UPSTREAM: idle connections gave theirs back
    after=$(rss_kib "$2")
    eval "exec ${IDLER[1]}>&-"
    wait "$IDLER_PID" || true
    awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.2f", (a - b) / n }'
  }
  IDLE_RESULTS=()
  for round in $(seq 1 "$IDLE_ROUNDS"); do
    [ "$round" = 1 ] || { start_nginx; start_idgate; }
    ngx=$(idle_kib "$NGX_PORT" "$(nginx_worker)" "")
    gw=$(idle_kib "$GW_PORT" "$GW_PID" "idgate_session=$SESSION")
    echo "idle, round $round: nginx worker $ngx KiB, idgate $gw KiB per connection ($(ratio "$gw" "$ngx")x)" >&2
    IDLE_RESULTS+=("$(ratio "$gw" "$ngx") $ngx $gw")
  done
  read -r IDLE_RATIO IDLE_NGX IDLE_GW <<<"$(printf '%s\n' "${IDLE_RESULTS[@]}" | sort -n | sed -n "$(((IDLE_ROUNDS + 1) / 2))p")"
  echo "$IDLE idle keep-alive connections: nginx worker $IDLE_NGX KiB each, idgate $IDLE_GW KiB each (${IDLE_RATIO}x; median of $IDLE_ROUNDS rounds)"
fi

if [ "${#VARIANTS[@]}" -gt 1 ]; then
  echo
  echo "summary ($(date -u +%F), $(nproc) cores, medians of $ROUNDS rounds): CPU µs/request, p99 ms, peak RSS MiB"
  printf '%-14s %10s %10s %10s %10s %9s %9s %8s %8s\n' variant "nginx CPU" "idgate CPU" "nginx p99" "idgate p99" "CPU" "p99" "nginx" "idgate"
  printf '%s\n' "${SUMMARY[@]}"
fi
echo "JWKS fetches by idgate at the provider: $KEYS_BEFORE before the signed-in runs, $KEYS_AFTER after"

if [ -n "${PERF_DATA:-}" ]; then
  command -v perf >/dev/null || fail "PERF_DATA is set but perf is missing (apt-get install linux-perf)"
  variant "${VARIANTS[0]}"
  start_idgate
  perf record -F 1999 --call-graph dwarf,32768 -o "$PERF_DATA" -p "$GW_PID" -- sleep "$DURATION" 2>"$WORK/perf.err" &
  PERF_PID=$!
  sleep 0.5
  load "$((DURATION > 2 ? DURATION - 1 : 1))" "$SCHEME://127.0.0.1:$GW_PORT/" "$COOKIE"
  wait "$PERF_PID" || fail "perf record failed: $(cat "$WORK/perf.err")"
  echo "profile of the signed-in path (${VARIANTS[0]}): $PERF_DATA"
fi

# Instructions per request: idgate under callgrind (user space only, the
# same count on a quiet machine or a busy one), each variant's signed-in
# load for CALLGRIND seconds, counted from the first request after a
# warm-up to the last.
if [ "${CALLGRIND:-0}" -gt 0 ]; then
  command -v valgrind >/dev/null || fail "CALLGRIND is set but valgrind is missing (apt-get install valgrind)"
  for v in "${VARIANTS[@]}"; do
    variant "$v"
    GW_WRAP="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$WORK/callgrind.$v"
    start_idgate
    GW_WRAP=""
    WRK_TIMEOUT=60s # each answer takes some 50 times as long
    load 2 "$SCHEME://127.0.0.1:$GW_PORT/" "$COOKIE"
    callgrind_control -i on "$GW_PID" >/dev/null
    load "$CALLGRIND" "$SCHEME://127.0.0.1:$GW_PORT/" "$COOKIE"
    callgrind_control -i off "$GW_PID" >/dev/null
    read -r total _ _ bad errors <<<"$LOAD"
    [ "${total:-0}" -gt 0 ] || fail "callgrind, $v: no request was answered"
    [ "$bad" = 0 ] && [ "$errors" = 0 ] || fail "callgrind, $v: $bad of $total answers were not 2xx"
    kill "$GW_PID" && wait "$GW_PID" 2>/dev/null || true
    GW_PID=""
    instructions=$(awk '/^totals:/ {s += $2} END {print s}' "$WORK/callgrind.$v")
    echo "callgrind, $v: $total requests, $(awk -v i="$instructions" -v n="$total" 'BEGIN { printf "%.0f", i / n }') instructions per request in idgate"
    if [ -n "${CALLGRIND_KEEP:-}" ]; then
      cp "$WORK/callgrind.$v" "$CALLGRIND_KEEP/callgrind.$v"
      echo "callgrind, $v: profile kept in $CALLGRIND_KEEP/callgrind.$v"
    fi
  done
fi

[ "$KEYS_BEFORE" = "$KEYS_AFTER" ] || fail "idgate fetched the JWKS during steady-state load"
[ "$WRK_ERRORS" = 0 ] || fail "some answers were not what the run expects (see FAILED above)"
