#!/usr/bin/env bash
# A Java runtime for spark-submit (the gold jobs in local mode): Debian's OpenJDK 17 when no
# `java` is on PATH (JAVA_HOME's counts too).
#   scripts/java.sh install    install it when missing (root or sudo, once)
set -euo pipefail

installed() {
  [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] || command -v java >/dev/null
}

install() {
  installed && return 0
  echo "installing Debian's openjdk-17-jre-headless (Spark's runtime)" >&2
  local sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
  installed
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
