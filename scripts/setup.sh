#!/usr/bin/env bash
# One idempotent setup for everything the README runs.
#
#   bash scripts/setup.sh          # .venv with torch, avalanche-lib, open_clip and this package
#   bash scripts/setup.sh --test   # the same, plus the test dependencies (pytest, libauc for parity tests)
#
# A second call with nothing changed returns in well under a second: it compares a hash of the
# install inputs with the stamp written after the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "setup.sh: unknown argument '$arg' (expected: --test)" >&2; exit 2 ;;
  esac
done

venv="${VENV:-.venv}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
if [ -z "$python" ]; then
  echo "setup.sh: no python3.11 or python3 on PATH; install Python 3.11 first" >&2; exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))'; then
  echo "setup.sh: $python is $("$python" --version 2>&1); Python 3.11 is expected" >&2; exit 1
fi

extras="offline"
[ "$want_test" = 1 ] && extras="offline,test"
stamp_value="$(cat setup.cfg pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$extras"
stamp_file="$venv/.avalanche-clip-setup"
# A test install covers a plain one, so either stamp satisfies the plain request.
if [ -f "$stamp_file" ]; then
  have="$(cat "$stamp_file")"
  if [ "$have" = "$stamp_value" ] || { [ "$want_test" = 0 ] && [ "${have%-*}" = "${stamp_value%-*}" ]; }; then
    exit 0
  fi
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# torch first and pinned: this exact pair is served from local disk here and imports torchvision.
"${pip[@]}" install "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" install -e ".[$extras]"
if [ "$want_test" = 1 ]; then
  # libauc (the authors' reference losses, for parity tests) declares huge unneeded dependencies.
  "${pip[@]}" install --no-deps "libauc==2.0.1"
fi
echo "$stamp_value" > "$stamp_file"
echo "setup.sh: $venv is ready ($extras)"
