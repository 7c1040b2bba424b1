# tern: `make run` starts the server on its embedded defaults, `make test` runs every test.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
FUZZTIME ?= 5s

.PHONY: all build run test deps tools lint unit fuzz fuzz-long test-hostile bench bench-relay docs clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o tern ./cmd/tern

# The first of the README's two commands: builds ./tern, then the shell execs it, so the PID it
# prints is the server's own (go run would leave its compiled child holding the ports when stopped
# by PID). Ctrl-C or kill PID stops it gracefully. ARGS are more flags for tern serve.
run: build
	@echo "tern serve: PID $$$$ (stop it with Ctrl-C, or kill $$$$)"; exec ./tern serve $(ARGS)

# The second: everything CI runs. Installs the real peers the tests need (apt-get, as root).
test: deps lint unit fuzz

deps:
	bash scripts/test-deps.sh

# The Go linters at their pinned versions, into .tools/bin (see scripts/test-deps.sh).
tools:
	bash scripts/test-deps.sh go

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	.tools/bin/staticcheck ./...
	bash scripts/errcheck.sh
	@$(GO) run ./cmd/tern config example | diff -u docs/config.toml - || \
	  { echo "docs/config.toml is stale: make docs"; exit 1; }
	@$(GO) run ./cmd/tern config reference | diff -u docs/config.md - || \
	  { echo "docs/config.md is stale: make docs"; exit 1; }
	@man=$$(mktemp -d); trap 'rm -rf "$$man"' EXIT; $(GO) run ./cmd/tern gen-man "$$man" && \
	  diff -ru docs/man "$$man" || { echo "docs/man is stale: make docs"; exit 1; }
	$(GO) run scripts/archdoc.go

# Unit, integration (real binary, real peers) and race tests, in random order.
unit:
	$(GO) test -race -shuffle=on -count=1 -timeout 20m ./...

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

# Every fuzz target for FUZZTIME each (10m unless FUZZTIME is given), with executions, new corpus
# entries and crashes per target; FUZZ='FuzzA|FuzzB' picks targets.
fuzz-long:
	bash scripts/fuzz-long.sh $(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),10m) '$(or $(FUZZ),.)'

# The hostile-client suite alone, and its table of figures (`make unit` runs it too).
test-hostile:
	@report=$$(mktemp); \
	TERN_HOSTILE_REPORT=$$report $(GO) test -count=1 -run '^TestHostile$$' ./test; status=$$?; \
	cat $$report; rm -f $$report; exit $$status

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/...

# Relaying to another server, tern against a stock Postfix in the same run (as root).
bench-relay:
	bash scripts/bench-relay.sh -R 5 -m 2000 -c 8

# docs/config.toml, docs/config.md and the man pages in docs/man, from the code (the lint checks them).
docs:
	$(GO) run ./cmd/tern config example > docs/config.toml
	$(GO) run ./cmd/tern config reference > docs/config.md
	rm -rf docs/man
	$(GO) run ./cmd/tern gen-man docs/man
	$(GO) run scripts/archdoc.go -w

clean:
	rm -f tern
