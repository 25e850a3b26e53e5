# modpipe: build, test and run. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Static binaries: nothing here needs cgo, and without the dynamic loader
# each exec is ~0.7 ms cheaper (host version 6.6 against 7.4 ms, a plugin
# to its handshake 5.1 against 5.8): a cold start pays one of each.
GOBUILD := CGO_ENABLED=0 $(GO) build
BIN := bin
PLUGINS := shell go git http file
EXAMPLE_PLUGINS := hello

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/host and every plugin into bin/plugins/
	@mkdir -p $(BIN)/plugins
	$(GOBUILD) -ldflags "$(LDFLAGS)" -o $(BIN)/host ./cmd/host
	@for p in $(PLUGINS); do echo "$(GOBUILD) -o $(BIN)/plugins/modpipe-plugin-$$p ./plugins/$$p"; $(GOBUILD) -o $(BIN)/plugins/modpipe-plugin-$$p ./plugins/$$p || exit 1; done
	@for p in $(EXAMPLE_PLUGINS); do echo "$(GOBUILD) -o $(BIN)/plugins/modpipe-plugin-$$p ./plugins/examples/$$p"; $(GOBUILD) -o $(BIN)/plugins/modpipe-plugin-$$p ./plugins/examples/$$p || exit 1; done
	bash plugins/examples/python/build.sh $(BIN)/plugins/modpipe-plugin-template

.PHONY: run
run: build ## build, then run this project's own pipeline.hcl on this machine
	$(BIN)/host run pipeline.hcl

.PHONY: etcd
etcd: ## build bin/etcd from the pinned go.etcd.io/etcd/server/v3 module (for fleets and their tests)
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/etcd go.etcd.io/etcd/server/v3

.PHONY: fleet
fleet: build etcd ## run examples/fleet/pipeline.hcl as a real fleet: etcd, a master and 3 workers (WORKERS=n) on this machine
	bash examples/fleet/run-fleet.sh

.PHONY: deps
deps: ## install the Debian tools the tests use (xmllint validates the JUnit report)
	@command -v xmllint >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-utils; }

.PHONY: test
test: deps lint proto-check build ## every check and test (what CI runs)
	$(GO) test -race -timeout 20m ./...

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: proto
proto: ## regenerate the plugin protocol's Go code from proto/
	bash proto/generate.sh

.PHONY: proto-check
proto-check: proto ## fail if the committed generated code is stale
	@git diff --exit-code --stat -- proto/ || { echo "proto/: generated code is stale: run 'make proto' and commit"; exit 1; }

.PHONY: bench
bench: ## run the benchmarks against make, ninja, asynq and Celery (QUICK=1: under a minute); writes bench/results.json
	bash bench/setup.sh
	$(GO) build -o $(BIN)/bench/modpipe-bench ./bench
	$(BIN)/bench/modpipe-bench $(if $(filter 1,$(QUICK)),-quick) $(BENCHFLAGS)

.PHONY: fuzz
fuzz: ## fuzz the HCL loader and the envelope decoding for a while each (FUZZTIME=30s)
	$(GO) test ./host/config -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $${FUZZTIME:-30s}
	$(GO) test ./host/config -run '^$$' -fuzz '^FuzzModuleValue$$' -fuzztime $${FUZZTIME:-30s}
	$(GO) test ./coordinator -run '^$$' -fuzz '^FuzzEnvelope$$' -fuzztime $${FUZZTIME:-30s}

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
