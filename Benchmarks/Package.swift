// swift-tools-version: 6.1
import PackageDescription

// Micro-benchmarks of Spool's hot paths (package-benchmark), kept in their own
// package so the benchmark framework never adds to the root package's build:
// `swift build` and `swift test` at the root do not see this directory.
// Run with `make microbench`, or `swift package --scratch-path .build benchmark` here.
let package = Package(
    name: "SpoolBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Spool", path: ".."),
        // MallocInterposer alone: malloc counts without jemalloc. The other default
        // trait, RuntimeInterposer (ARC counts on Linux with Swift 6.3), is left off:
        // it pulls in swift-runtime-interposer, a package Spool does not take.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // What both targets share: payloads and the measurement settings.
        .target(
            name: "BenchmarkInputs",
            dependencies: [.product(name: "Benchmark", package: "benchmark")],
            path: "Sources/BenchmarkInputs"
        ),
        // hiredis reply bytes -> RedisValue: every reply Spool reads.
        .executableTarget(
            name: "ReplyDecoding",
            dependencies: [
                "BenchmarkInputs",
                .product(name: "Hiredis", package: "Spool"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ReplyDecoding",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // JobRequest -> enqueue.lua arguments, job ids, payload JSON checks.
        .executableTarget(
            name: "JobEncoding",
            dependencies: [
                "BenchmarkInputs",
                .product(name: "Spool", package: "Spool"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/JobEncoding",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
