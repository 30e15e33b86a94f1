#!/usr/bin/env bash
# Deploy (or upgrade) Conveyor with plain kubectl, migrations first:
#   deploy/k8s/deploy.sh deploy/k8s/overlays/prod
# 1. namespace, shared config, network policies, PostgreSQL and Redis (first install: wait for PostgreSQL);
# 2. the migration Job alone, waited for: a failed migration stops here, old pods keep serving;
# 3. everything else, then wait for the rollouts.
# Argo CD users get the same order from the Job's PreSync hook annotation instead.
set -euo pipefail

overlay="${1:?usage: deploy.sh OVERLAY_DIR (e.g. deploy/k8s/overlays/prod)}"
timeout="${CONVEYOR_DEPLOY_TIMEOUT:-15m}"
namespace="$(kubectl kustomize "$overlay" | awk '/^kind: Namespace$/{ns=1} ns && /^  name: /{print $2; exit}')"
if [[ -z "$namespace" ]]; then
  echo "deploy.sh: no Namespace object in $overlay" >&2
  exit 1
fi

echo "==> $overlay into namespace $namespace"
kubectl apply -k "$overlay" -l 'app.kubernetes.io/component in (namespace, config, network-policy, database, broker)'
kubectl -n "$namespace" wait --for=condition=Ready cluster.postgresql.cnpg.io/conveyor-pg --timeout="$timeout"

echo "==> migrating"
# A Job's pod template is immutable: replace the previous run instead of patching it.
kubectl -n "$namespace" delete job conveyor-migrate --ignore-not-found --wait=true
kubectl apply -k "$overlay" -l 'app.kubernetes.io/component=migration'
if ! kubectl -n "$namespace" wait --for=condition=Complete job/conveyor-migrate --timeout="$timeout"; then
  kubectl -n "$namespace" logs job/conveyor-migrate --tail=100 >&2 || true
  echo "deploy.sh: migration failed; nothing else was changed" >&2
  exit 1
fi

echo "==> rolling out"
kubectl apply -k "$overlay"
for deployment in job-service result-service api-gateway flower worker; do
  kubectl -n "$namespace" rollout status "deployment/$deployment" --timeout="$timeout"
done
