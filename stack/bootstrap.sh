#!/usr/bin/env bash
# Installs whatever the project needs and the machine lacks; quick when nothing is missing.
# Debian packages: a Java 17+ runtime and Maven (for the Kafka broker), PostgreSQL, Chromium
# (browser tests); then the Python venv and the Kafka jars from Maven Central.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*"; }

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
  [ "${major%%.*}" -ge 17 ] 2>/dev/null
}

packages=()
java_ok || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || packages+=(postgresql)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
# The browser tests drive Debian's Chromium: Playwright's own browser download is not used.
[ -x /usr/bin/chromium ] || packages+=(chromium)

if [ ${#packages[@]} -gt 0 ]; then
  log "installing Debian packages: ${packages[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  log "installing Python dependencies"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi

if [ ! -f var/cache/kafka-libs/kafka_2.13-4.1.1.jar ]; then
  log "fetching the Kafka 4.1.1 jars from Maven Central"
  mkdir -p var/cache/kafka-libs
  (cd stack/kafka && mvn -q -B dependency:copy-dependencies \
      -DoutputDirectory=../../var/cache/kafka-libs -DincludeScope=runtime)
fi
log "ready"
