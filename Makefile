# re2g build. `make demo` runs the main job, `make test` runs every test; both
# install what they need first (Debian packages, native libraries) and skip
# whatever is already in place.
SHELL := /bin/bash
GO ?= go
JOBS ?= 2
BUILD := build
export CGO_ENABLED := 1

# Native pieces add themselves to NATIVE from mk/*.mk.
NATIVE :=
include $(sort $(wildcard mk/*.mk))

.PHONY: all deps natives build test vet demo clean
all: build

deps:
	@bash third_party/install-deps.sh

natives: deps
	@$(if $(NATIVE),$(MAKE) --no-print-directory -j$(JOBS) $(NATIVE),true)

GO_SOURCES := $(shell find . -name '*.go' -not -path './build/*' 2>/dev/null) go.mod go.sum

build: natives bin/re2g

bin/re2g: $(GO_SOURCES) $(NATIVE)
	$(GO) build -o $@ ./cmd/re2g

vet: natives
	$(GO) vet ./...

test: build vet
	$(GO) test -count=1 -timeout 60m ./...

demo: build
	bin/re2g demo --work out/demo

clean:
	rm -rf $(BUILD) bin
