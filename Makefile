# accountwatch — `make run` starts the local stack, `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
# Every module of go.work (pkg and services/*), resolved from the workspace.
MODULES := $(shell $(GO) list -m -f '{{.Dir}}' 2>/dev/null)
SERVICES := $(filter-out devstack,$(notdir $(wildcard services/*)))
TEST_FLAGS ?= -race -count=1 -timeout 20m
BIN := $(CURDIR)/bin

.PHONY: run build test bench bench-short chaos chaos-short conformance lint staticcheck fmt vet check-deps tidy schemas clean help

help:
	@echo "make run    start the local stack (embedded JetStream, upstream-sim, every service)"
	@echo "make test   run every test of every module with -race"
	@echo "make bench  run the benchmarks: every figure beside its raw baseline (bench.json)"
	@echo "make chaos  a 3-node JetStream cluster under every fault, and the ledger (about 12 min; root)"
	@echo "make conformance  the pipeline against an upstream written from the providers' documents (python3; about 3 min)"
	@echo "make lint   gofmt, go vet and the dependency rules"

## build: every service binary into bin/
build:
	@mkdir -p $(BIN)
	@for d in services/*/; do \
	  name=$$(basename $$d); \
	  (cd $$d && $(GO) build -o $(BIN)/$$name .) || exit 1; \
	done
	@echo "built: $$(ls $(BIN) | tr '\n' ' ')"

## run: the whole pipeline on its embedded default; a second run resumes from ./data
run: build
	@$(BIN)/devstack --bin $(BIN) --root $(CURDIR)

## test: every test of every module, race detector on
test:
	@fail=0; for m in $(MODULES); do \
	  echo "== $${m#$(CURDIR)/}"; \
	  (cd $$m && $(GO) test $(TEST_FLAGS) ./...) || fail=1; \
	done; exit $$fail

## bench: every figure beside its raw baseline measured in the same run, one
## line each (name value unit baseline baseline_unit ratio), and bench.json;
## each benchmark's own output in bench.log. bench-short is CI's small form.
bench:
	@$(GO) run ./bench -root $(CURDIR)

bench-short:
	@$(GO) run ./bench -root $(CURDIR) -short

## chaos: the services on a 3-node JetStream cluster under faults, and the ledger
## of what was changed, stored and delivered (chaos/README.md). Root gives it
## the network partition (a network namespace) and the full disk (a tmpfs).
chaos:
	@cd chaos && $(GO) run . -form long -root $(CURDIR)

## chaos-short: the CI form (every fault but the full disk, each service killed once)
chaos-short:
	@cd chaos && $(GO) run . -form short -root $(CURDIR)

## conformance: the real services against conformance/upstream, an upstream
## written from the providers' published documents only (conformance/README.md).
## Needs python3 (Debian package python3): outside CI it skips without it.
conformance:
	@if command -v python3 >/dev/null 2>&1; then (cd conformance/upstream && python3 -m unittest -q test_server); fi
	@cd chaos && $(GO) run ./conformance -root $(CURDIR)

fmt:
	@gofmt -w $$(git ls-files '*.go')

vet:
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

## check-deps: services never import each other; pkg never imports services;
## the event model is a leaf; provider clients import no NATS and no event code.
check-deps:
	@bash deploy/check-deps.sh

## staticcheck: pinned, built from the module proxy into bin/ (nothing installed by hand)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck:
	@GOBIN=$(BIN) GOFLAGS= $(GO) install $(STATICCHECK)
	@for m in $(MODULES); do (cd $$m && $(BIN)/staticcheck ./...) || exit 1; done

lint: vet check-deps staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi

## tidy: go mod tidy in every module (each builds on its own, GOWORK=off, for Docker)
tidy:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

## schemas: refresh pkg's embedded copy of schemas/
schemas:
	@cd pkg && $(GO) generate ./schemas

clean:
	rm -rf $(BIN)

## screenshots: docs/screenshots from the tests' own output (needs chromium)
.PHONY: screenshots
screenshots:
	@bash docs/screenshots/make.sh
