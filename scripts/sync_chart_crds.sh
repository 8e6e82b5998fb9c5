#!/usr/bin/env bash
# Copy the CRD manifests (deploy/crds/, the one schema) into the Helm chart's crds/ folder.
# Run it after changing any file in deploy/crds/; tests/integration/test_helm_chart.py fails
# when the two differ. The chart's own extra CRD (kopf.dev_peerings.yaml, kopf's peering
# resources) is not in deploy/crds/ and is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
src=deploy/crds
dst=helm/go-reports/crds
mkdir -p "$dst"
shopt -s nullglob
copied=0
for f in "$src"/*.yaml "$src"/*.yml "$src"/*.json; do
  cp -f -- "$f" "$dst/$(basename -- "$f")"
  copied=$((copied + 1))
done
# A CRD removed from deploy/crds/ must not linger in the chart: chart CRD files named like
# ours (group goreports.io) that have no source any more are deleted.
for f in "$dst"/goreports.io_*; do
  [ -e "$src/$(basename -- "$f")" ] || { rm -f -- "$f"; echo "removed stale $f"; }
done
echo "copied $copied CRD file(s) from $src to $dst"
