# No build tags: Prometheus's default label layout (stringlabels) is used
# (docs/benchmarks.md, "Label layout").
export CGO_ENABLED ?= 0

GO      ?= go
BIN     ?= bin/vigil
VERSION ?= $(shell cat VERSION)
LDFLAGS := -s -w -X github.com/prometheus/common/version.Version=$(VERSION) \
	-X github.com/prometheus/common/version.Revision=$(shell git rev-parse --short HEAD 2>/dev/null) \
	-X github.com/prometheus/common/version.Branch=$(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)

.PHONY: all build run demo test lint bench fmt clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

run:
	@echo "make run: building $(BIN) from ./cmd/vigil (the first build compiles Prometheus and takes a few minutes; later ones are quick)"
	@$(MAKE) --no-print-directory build
	@echo "make run: starting $(BIN) $(ARGS) (without --config: the built-in default, http://127.0.0.1:9090/)"
	./$(BIN) $(ARGS)

demo: build
	./$(BIN) demo

test:
	./scripts/test.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	./scripts/bench.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
