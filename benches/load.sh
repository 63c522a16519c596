#!/usr/bin/env bash
# Load benchmark: idgate and nginx as a plain reverse proxy, in front of the
# same upstream (an nginx answering a small static body), measured in one
# run with wrk. Prints requests/s, p99 latency and CPU time per request of
# each proxy process, and the idgate/nginx ratios.
#
#   benches/load.sh [duration-seconds] [connections]
#
# Each proxy gets one worker (idgate: server.threads = 1, nginx:
# worker_processes 1) and no access log, so the numbers compare the data
# paths. Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNS="${2:-32}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
command -v wrk >/dev/null || { echo "wrk is missing: scripts/setup --test installs it" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is missing: scripts/setup --test installs it" >&2; exit 1; }

cargo build --release --locked --bin idgate >&2
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null || true
  [ -f "$WORK/px.pid" ] && kill "$(cat "$WORK/px.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT="$(free_port)"; NGX_PORT="$(free_port)"; GW_PORT="$(free_port)"; ADM_PORT="$(free_port)"

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
nginx_conf px "$NGX_PORT" 'location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }'

cat > "$WORK/idgate.toml" <<CONF
[server]
listen = "127.0.0.1:$GW_PORT"
public_url = "http://127.0.0.1:$GW_PORT"
threads = 1
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[admin]
listen = "127.0.0.1:$ADM_PORT"
[database]
url = "sqlite://$WORK/idgate.db"
[log]
level = "warn"
CONF
target/release/idgate serve --config "$WORK/idgate.toml" 2>"$WORK/idgate.err" &
PIDS+=($!)
GW_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ADM_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

TICK=$(getconf CLK_TCK)
cpu_ticks() { # pids...: utime+stime of each, summed
  local t=0
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
nginx_pids() { pgrep -f "nginx: .*$WORK/px.conf" ; pgrep -P "$(cat "$WORK/px.pid")"; }

measure() { # name url pids...
  local name="$1" url="$2"; shift 2
  wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null # warm-up
  local before after out
  before=$(cpu_ticks "$@")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url")
  after=$(cpu_ticks "$@")
  local rps p99 total
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [ -z "$errors" ] || echo "warning: $name: $errors" >&2
  local us_per_req
  us_per_req=$(awk -v d=$((after - before)) -v tick="$TICK" -v n="$total" 'BEGIN { printf "%.1f", d / tick * 1e6 / n }')
  echo "$name $rps $p99 $us_per_req"
}

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}' <<<"$1"; }

NGX_PIDS=$(nginx_pids | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086
read -r _ n_rps n_p99 n_cpu < <(measure nginx "http://127.0.0.1:$NGX_PORT/" $NGX_PIDS)
read -r _ g_rps g_p99 g_cpu < <(measure idgate "http://127.0.0.1:$GW_PORT/" "$GW_PID")

n_p99ms=$(to_ms "$n_p99"); g_p99ms=$(to_ms "$g_p99")
echo
echo "wrk: 1 thread, $CONNS connections, ${DURATION}s per proxy; one worker per proxy; $(nproc) cores"
printf '%-28s %12s %10s %16s\n' "proxy" "requests/s" "p99 (ms)" "CPU µs/request"
printf '%-28s %12s %10s %16s\n' "nginx (plain pass-through)" "$n_rps" "$n_p99ms" "$n_cpu"
printf '%-28s %12s %10s %16s\n' "idgate (pass-through)" "$g_rps" "$g_p99ms" "$g_cpu"
awk -v a="$g_rps" -v b="$n_rps" -v c="$g_p99ms" -v d="$n_p99ms" -v e="$g_cpu" -v f="$n_cpu" \
  'BEGIN { printf "%-28s %11.2fx %9.2fx %15.2fx\n", "ratio idgate/nginx", a/b, c/d, e/f }'
