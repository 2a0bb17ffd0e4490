# Allium. `make demo` shows it working; `make test` runs every test tier.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
OUT     := $(CURDIR)/out
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED := 0

# The heavy tiers are opt-in for `go test ./...`; `make test` enables them.
TIERS := ALLIUM_ROOT_TESTS=1 ALLIUM_QEMU_TESTS=1 ALLIUM_TOR_TESTS=1 ALLIUM_BIN=$(OUT)

# The client programs run on the operator's machine, which may be any
# of PLATFORMS (OS-ARCH).
CLIENTS   := cloud mkimage
PLATFORMS := linux-amd64 linux-arm64 darwin-amd64 darwin-arm64
DIST      := $(OUT)/dist
DIST_BINS := $(foreach p,$(PLATFORMS),$(foreach c,$(CLIENTS),$(DIST)/$c-$p))
# $(call field,N,A-B-C) is the Nth of the dash-separated fields.
field = $(word $1,$(subst -, ,$2))

.PHONY: all build deps test unit unit-arm64 cross $(PLATFORMS:%=cross-%) dist demo bench clean FORCE
all: build

build: $(OUT)/init $(OUT)/kexec $(OUT)/cloud $(OUT)/mkimage

# `go build` decides what is stale; FORCE makes make always ask it.
$(OUT)/%: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./$*

deps:
	tools/deps.sh

# Every tier, the clients' cross builds and their arm64 unit tests.
test: deps build cross unit-arm64
	$(GO) vet ./...
	$(TIERS) $(GO) test -count=1 -timeout 25m ./...

# Unit tier only: no root, no QEMU, no tor; and the clients' cross builds
# (and their arm64 unit tests where qemu-user is installed).
unit: cross
	$(GO) test ./...
	@if [ -x $(QEMU_ARM64) ]; then $(MAKE) --no-print-directory unit-arm64; \
	else echo "unit: skipping the clients' linux/arm64 tests: no $(QEMU_ARM64) (apt-get install qemu-user-static)"; fi

# The clients' unit tests (cloud, the API client, the manifest, mkimage
# pack) built for linux/arm64 and run under qemu-user.
QEMU_ARM64 := /usr/bin/qemu-aarch64-static
unit-arm64:
	GOARCH=arm64 $(GO) test -count=1 -exec $(QEMU_ARM64) ./cloud ./api ./manifest ./internal/cli
	GOARCH=arm64 $(GO) test -count=1 -exec $(QEMU_ARM64) -run 'Pack|Compress|LZMA2|SplitCommand' ./mkimage

# The clients build, and pass go vet with their tests, for every
# platform: cross-OS-ARCH does one.
cross: $(PLATFORMS:%=cross-%)
$(PLATFORMS:%=cross-%): cross-%:
	GOOS=$(call field,1,$*) GOARCH=$(call field,2,$*) $(GO) build -o /dev/null $(CLIENTS:%=./%)
	GOOS=$(call field,1,$*) GOARCH=$(call field,2,$*) $(GO) vet $(CLIENTS:%=./%)

# The client binaries to hand out: out/dist/PROG-OS-ARCH for each client
# and platform, built as `build` builds, and their SHA256SUMS.
dist: $(DIST)/SHA256SUMS

$(DIST)/SHA256SUMS: $(DIST_BINS)
	cd $(DIST) && sha256sum $(notdir $(DIST_BINS)) >SHA256SUMS

$(DIST_BINS): $(DIST)/%: FORCE
	GOOS=$(call field,2,$*) GOARCH=$(call field,3,$*) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./$(call field,1,$*)

demo: deps build
	tools/demo.sh

# -p 1: one package's benchmarks at a time, so that none measures
# another's load. ALLIUM_BENCH_BIG=1 adds the ~200 MB rootfs unpack.
bench: deps build
	$(TIERS) $(GO) test -p 1 -count=1 -run '^$$' -bench . -benchtime 1x -timeout 40m ./...

clean:
	rm -rf $(OUT)
