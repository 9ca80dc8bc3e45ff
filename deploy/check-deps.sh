#!/usr/bin/env bash
# The dependency rules of DESIGN.md, checked with `go list -deps`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=github.com/accountwatch/accountwatch
fail=0
deps() { (cd "$1" && go list -deps "${2:-./...}" 2>/dev/null) | grep "^$root" || true; }

# 1. services never import each other; pkg never imports services.
for d in services/*/; do
  name=$(basename "$d")
  bad=$(deps "$d" | grep "^$root/services/" | grep -v "^$root/services/$name" || true)
  [ -z "$bad" ] || { echo "services/$name imports another service: $bad"; fail=1; }
done
bad=$(deps pkg | grep "^$root/services/" || true)
[ -z "$bad" ] || { echo "pkg imports services: $bad"; fail=1; }

# 2. the event model is a leaf: CloudEvents and the standard library only.
bad=$( (cd pkg && go list -deps ./event) | grep -E "nats-io|^$root/pkg/(eventbus|activeplatform|alibaba)" || true)
[ -z "$bad" ] || { echo "pkg/event must be a leaf, imports: $bad"; fail=1; }

# 2. the one Retry-After parser is a leaf too: sinks and provider clients share it.
bad=$( (cd pkg && go list -deps ./retryafter) | grep -E "nats-io|^$root/" | grep -v "^$root/pkg/retryafter$" || true)
[ -z "$bad" ] || { echo "pkg/retryafter must be a leaf, imports: $bad"; fail=1; }

# 2. provider clients import no NATS and no event code.
for p in activeplatform alibaba; do
  [ -d "pkg/$p" ] || continue
  bad=$( (cd pkg && go list -deps ./$p/...) | grep -E "nats-io|cloudevents|^$root/pkg/(event|eventbus)$" || true)
  [ -z "$bad" ] || { echo "pkg/$p must not import NATS or the event model: $bad"; fail=1; }
done

# 2. the poller's engine knows no provider: it reads a source's capabilities;
#    each provider is one adapter in services/poller/internal/source.
bad=$( (cd services/poller && go list -deps ./internal/engine) | grep -E "^$root/pkg/(activeplatform|alibaba|sim)$" || true)
[ -z "$bad" ] || { echo "services/poller/internal/engine must not import a provider client: $bad"; fail=1; }

# 3. the JetStream plumbing knows no provider.
bad=$( (cd pkg && go list -deps ./eventbus) | grep -E "^$root/pkg/(activeplatform|alibaba)" || true)
[ -z "$bad" ] || { echo "pkg/eventbus must not know a provider: $bad"; fail=1; }

# 3. a sink knows no provider's wire format: the sink runtime, routing, silences,
#    dead letters and every notifier stay clear of the provider clients.
for p in sink route silence deadletter; do
  [ -d "pkg/$p" ] || continue
  bad=$( (cd pkg && go list -deps ./$p) | grep -E "^$root/pkg/(activeplatform|alibaba|sim)$" || true)
  [ -z "$bad" ] || { echo "pkg/$p must not know a provider: $bad"; fail=1; }
done
for d in services/*-notifier/ services/webhook-dispatcher/; do
  [ -d "$d" ] || continue
  bad=$(deps "$d" | grep -E "^$root/pkg/(activeplatform|alibaba|sim)$" || true)
  [ -z "$bad" ] || { echo "$d must not know a provider: $bad"; fail=1; }
done

[ $fail -eq 0 ] && echo "check-deps: ok"
exit $fail
