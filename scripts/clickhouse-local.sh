#!/usr/bin/env bash
# Run a throwaway ClickHouse server as a plain process, data under the project.
#   scripts/clickhouse-local.sh start|stop|status|install
# Environment: CH_DIR (default .local/clickhouse), CH_TCP_PORT (19000), CH_HTTP_PORT (18123),
# CH_USER (default) and CH_PASSWORD (empty): the one user, and its password, stored as a SHA-256.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
CH_DIR="${CH_DIR:-$here/.local/clickhouse}"
CH_TCP_PORT="${CH_TCP_PORT:-19000}"
CH_HTTP_PORT="${CH_HTTP_PORT:-18123}"
CH_USER="${CH_USER:-default}"
CH_PASSWORD="${CH_PASSWORD:-}"
pidfile="$CH_DIR/server.pid"

install() {  # the server, and the client (its own package) that the history benchmark's floor uses
  local missing=()
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
  ((${#missing[@]})) || return 0
  echo "installing Debian's ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
  if [[ ! "$CH_USER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "CH_USER must be letters, digits and '_', not starting with a digit: $CH_USER" >&2
    return 1
  fi
  local password="<password></password>"
  if [[ -n "$CH_PASSWORD" ]]; then
    password="<password_sha256_hex>$(printf '%s' "$CH_PASSWORD" | sha256sum | cut -d' ' -f1)</password_sha256_hex>"
  fi
  mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
  cat >"$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$CH_DIR/log/server.log</log><errorlog>$CH_DIR/log/error.log</errorlog><size>50M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <http_port>$CH_HTTP_PORT</http_port>
  <max_concurrent_queries>50</max_concurrent_queries>
  <mark_cache_size>536870912</mark_cache_size>
  <path>$CH_DIR/data/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
</yandex>
XML
  cat >"$CH_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><log_queries>1</log_queries></default></profiles>
  <users><$CH_USER>$password<networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></$CH_USER></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  install
  if running; then echo "clickhouse already running (pid $(cat "$pidfile"))"; return 0; fi
  if curl -s -o /dev/null "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null; then
    echo "port $CH_HTTP_PORT already answers, but not a server started from $CH_DIR;" \
      "stop it or set CH_TCP_PORT and CH_HTTP_PORT (or CLICKHOUSE_HOST to use it)" >&2
    return 1
  fi
  write_config
  # `exec`: the recorded pid is the server's own, not a subshell's, so `stop` really stops it.
  (cd "$CH_DIR" && exec nohup clickhouse-server --config-file="$CH_DIR/config.xml" \
    >"$CH_DIR/log/stdout.log" 2>&1) &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$CH_HTTP_PORT") 2>/dev/null && \
       [[ "$(curl -s "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null)" == "Ok." ]]; then
      echo "clickhouse listening on 127.0.0.1:$CH_TCP_PORT (native), :$CH_HTTP_PORT (http); data in $CH_DIR"
      return 0
    fi
    running || { echo "clickhouse-server exited; see $CH_DIR/log" >&2; tail -20 "$CH_DIR/log/stdout.log" "$CH_DIR/log/error.log" >&2 || true; return 1; }
    sleep 0.2
  done
  echo "clickhouse did not answer within 20 s; see $CH_DIR/log" >&2
  return 1
}

stop() {
  if running; then
    pid="$(cat "$pidfile")"; kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    echo "clickhouse stopped"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$pidfile"))"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
