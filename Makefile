# Spool's entry points. On a fresh Debian 12 machine `make run` and `make test`
# do everything: each first installs what is missing (`deps`).
#
# Redis servers started here are always stopped through their pid files;
# nothing is ever killed by name. The logic lives in scripts/ so each step can
# also be run by hand.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Swift lives in /opt/swift on the project's machines: use it when nothing on
# PATH comes first.
ifneq ($(wildcard /opt/swift/usr/bin/swift),)
export PATH := $(PATH):/opt/swift/usr/bin
endif

# Extra arguments: make test TEST_ARGS="--filter ClaimTests", make bench BENCH_ARGS="--help".
TEST_ARGS ?=
BENCH_ARGS ?=
# Where make bench writes its results as JSON (bench-results/ is git-ignored).
BENCH_JSON ?= bench-results/latest.json

.PHONY: help deps build release lua openapi test run stop bench microbench chaos clean

help:
	@echo "make run      install what is missing, build, start Redis + a worker, run a demo batch"
	@echo "make stop     stop the worker and Redis that make run started"
	@echo "make test     run every test against a private redis-server on a free loopback port"
	@echo "make build    debug build (swift build)"
	@echo "make release  release build of the spool binary, Swift runtime linked in (no Swift needed where it runs)"
	@echo "make bench    spool bench (release) against a private redis-server; JSON in $(BENCH_JSON)"
	@echo "make microbench  micro-benchmarks of reply decoding and job encoding (Benchmarks/, no Redis)"
	@echo "make chaos    the chaos test for 2 minutes: workers SIGKILLed every 300 ms, Redis restarted"
	@echo "make lua      regenerate Sources/Spool/Generated/LuaSources.swift from lua/"
	@echo "make openapi  regenerate Sources/SpoolServer/Generated/OpenAPIDocument.swift from docs/openapi.json"
	@echo "make deps     install the apt packages that are missing and check Swift"
	@echo "make clean    stop make run's processes and remove .build and .run"

deps:
	@scripts/deps.sh

build: deps
	@echo "build: swift build"
	@swift build

# --static-swift-stdlib: the Swift runtime and Foundation are linked into the
# binary (about 130 MB), so it runs where Swift is not installed, and each
# worker process maps no Swift shared libraries: about 2.4 MB less resident
# memory per process (docs/PERFORMANCE.md, worker RSS). lld (shipped with the
# Swift toolchain) links it: gold warns about the mktemp call inside the
# static Foundation, which Spool never makes.
RELEASE_FLAGS = -c release --product spool --static-swift-stdlib -Xswiftc -use-ld=lld
release: deps
	@echo "release: swift build $(RELEASE_FLAGS)"
	@swift build $(RELEASE_FLAGS)

lua:
	@scripts/embed-lua.sh
	@echo "lua: wrote Sources/Spool/Generated/LuaSources.swift from lua/*.lua"

openapi:
	@scripts/embed-openapi.sh
	@echo "openapi: wrote Sources/SpoolServer/Generated/OpenAPIDocument.swift from docs/openapi.json"

test: deps
	@scripts/test.sh $(TEST_ARGS)

run: build
	@scripts/run.sh

stop:
	@scripts/stop.sh

bench: release
	@scripts/bench.sh --json-file $(BENCH_JSON) $(BENCH_ARGS)

# package-benchmark in its own package (Benchmarks/), so the root build never
# compiles it. Extra arguments: make microbench MICROBENCH_ARGS="--filter 'claim.*'" (whole-name regex).
MICROBENCH_ARGS ?=
microbench: deps
	@cd Benchmarks && swift package --scratch-path .build benchmark $(MICROBENCH_ARGS)

# The chaos test for longer: 2 minutes of SIGKILLs and 20,000 jobs (make test runs 20 s, 5,000).
CHAOS_SECONDS ?= 120
CHAOS_JOBS ?= 20000
chaos: deps
	@SPOOL_CHAOS_SECONDS=$(CHAOS_SECONDS) SPOOL_CHAOS_JOBS=$(CHAOS_JOBS) scripts/test.sh --filter ChaosTests

clean: stop
	@echo "clean: swift package clean; rm -rf .build .run"
	@swift package clean
	@rm -rf .build .run
