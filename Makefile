# Allium. `make demo` shows it working; `make test` runs every test tier.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
OUT     := $(CURDIR)/out
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED := 0

# The heavy tiers are opt-in for `go test ./...`; `make test` enables them.
TIERS := ALLIUM_ROOT_TESTS=1 ALLIUM_QEMU_TESTS=1 ALLIUM_TOR_TESTS=1 ALLIUM_BIN=$(OUT)

.PHONY: all build deps test unit demo bench clean FORCE
all: build

build: $(OUT)/init $(OUT)/cloud $(OUT)/mkimage

# `go build` decides what is stale; FORCE makes make always ask it.
$(OUT)/%: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./$*

deps:
	tools/deps.sh

test: deps build
	$(GO) vet ./...
	$(TIERS) $(GO) test -count=1 -timeout 25m ./...

# Unit tier only: no root, no QEMU, no tor.
unit:
	$(GO) test ./...

demo: deps build
	tools/demo.sh

# -p 1: one package's benchmarks at a time, so that none measures
# another's load. ALLIUM_BENCH_BIG=1 adds the ~200 MB rootfs unpack.
bench: deps build
	$(TIERS) $(GO) test -p 1 -count=1 -run '^$$' -bench . -benchtime 1x -timeout 40m ./...

clean:
	rm -rf $(OUT)
