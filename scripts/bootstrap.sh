#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv and link it as .venv.
#
# The venv lives outside the checkout, keyed by a hash of the lock file and of the ClickHouse
# provider's sources, so fresh clones and CI runs on the same machine reuse it, and a changed
# lock or provider builds a new one. Being shared, it holds a copy of the provider, never an
# editable install pointing into one clone.
#   NSE_VENV_CACHE  where venvs are kept (default ~/.cache/nse-airflow)
#   PYTHON          interpreter to build it with (default python3.11, else python3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${NSE_VENV_CACHE:-$HOME/.cache/nse-airflow}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
UV_VERSION="0.13.9"

provider="providers/clickhouse"
# The provider's files, in a fixed order, without what building or running them leaves behind.
# The Makefile's .venv/.complete rule lists the same files.
provider_files() {
  find "$provider" \( -name __pycache__ -o -name '*.egg-info' -o -path "$provider/build" \
    -o -path "$provider/dist" \) -prune -o -type f -print | LC_ALL=C sort
}
# Paths and contents: renaming or adding a provider file changes the key too.
venv_key="$({ sha256sum requirements.txt; provider_files | xargs -d '\n' sha256sum; } \
  | sha256sum | cut -c1-12)"
venv="$cache/venv-py$("$python" -c 'import sys; print("%d%d" % sys.version_info[:2])')-$venv_key"

if [[ ! -f "$venv/.complete" ]]; then
  echo "building virtualenv $venv (about a minute)" >&2
  rm -rf "$venv" "$cache/uv"
  mkdir -p "$cache"
  "$python" -m venv "$cache/uv"
  "$cache/uv/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
  "$python" -m venv "$venv"
  # pyspark and pyspark-client share one folder: the lock pins both to the same release, so the
  # files they both ship are identical whatever order they land in. Bytecode is compiled at
  # install: with PYTHONDONTWRITEBYTECODE set, as on the project's machines, every process would
  # otherwise compile every module it imports again (seconds for airflow or great_expectations).
  "$cache/uv/bin/uv" pip install -q --python "$venv/bin/python" --compile-bytecode \
    -r requirements.txt
  # --no-deps: what the provider needs is in the lock, so this installs it and nothing else.
  "$cache/uv/bin/uv" pip install -q --python "$venv/bin/python" --compile-bytecode --no-deps \
    "./$provider"
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
echo "virtualenv: .venv -> $venv" >&2
