#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv and link it as .venv.
#
# The venv lives outside the checkout, keyed by the lock file's hash, so fresh clones and CI
# runs on the same machine reuse it, and a changed lock builds a new one.
#   NSE_VENV_CACHE  where venvs are kept (default ~/.cache/nse-airflow)
#   PYTHON          interpreter to build it with (default python3.11, else python3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${NSE_VENV_CACHE:-$HOME/.cache/nse-airflow}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
UV_VERSION="0.13.9"

lock_hash="$(cat requirements.txt | sha256sum | cut -c1-12)"
venv="$cache/venv-py$("$python" -c 'import sys; print("%d%d" % sys.version_info[:2])')-$lock_hash"

if [[ ! -f "$venv/.complete" ]]; then
  echo "building virtualenv $venv (about a minute)" >&2
  rm -rf "$venv" "$cache/uv"
  mkdir -p "$cache"
  "$python" -m venv "$cache/uv"
  "$cache/uv/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
  "$python" -m venv "$venv"
  # pyspark and pyspark-client share one folder: the lock pins both to the same release, so the
  # files they both ship are identical whatever order they land in.
  "$cache/uv/bin/uv" pip install -q --python "$venv/bin/python" -r requirements.txt
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
echo "virtualenv: .venv -> $venv" >&2
