#!/usr/bin/env bash
# Endpoints as code from any CI: validate, show the plan, deploy.
#
#   MODELGATE_HOST=https://gw.example.com MODELGATE_TOKEN=... ./ci.sh dev           # plan only
#   MODELGATE_HOST=https://gw.example.com MODELGATE_TOKEN=... ./ci.sh prod deploy    # apply
#
# Needs the `modelgate` binary on PATH. Exit codes: 0 done (or nothing to change), 1 a problem.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: ci.sh TARGET [deploy]}
action=${2:-plan}

modelgate bundle validate -t "$target"

# plan exits 2 when there are changes: that is not a failure here.
set +e
modelgate bundle plan -t "$target" --prune | tee plan.txt
status=${PIPESTATUS[0]}
set -e
case "$status" in
  0) echo "no changes for $target" ;;
  2) echo "changes pending for $target" ;;
  *) exit "$status" ;;
esac

if [ "$action" = deploy ] && [ "$status" = 2 ]; then
  modelgate bundle deploy -t "$target" --prune --auto-approve
  modelgate bundle summary -t "$target"
fi
