// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Spool",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "spool", targets: ["SpoolCLI"]),
        .library(name: "Spool", targets: ["Spool"]),
        .library(name: "Hiredis", targets: ["Hiredis"]),
        .library(name: "SpoolServer", targets: ["SpoolServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // The HTTP status reader only (SpoolServer); traits off: no swift-configuration.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // C modules: a module map and one shim header each (CCurl's also loads libcurl).
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // libcurl's header only: the library is loaded with dlopen when the
        // first callback is sent (see shim.h), so it is not linked.
        .systemLibrary(
            name: "CCurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // The only importer of CHiredis.
        .target(name: "Hiredis", dependencies: ["CHiredis"]),
        // The core: keys, job record, scripts, client, worker.
        .target(
            name: "Spool",
            dependencies: [
                "Hiredis",
                "CCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "SpoolCLI",
            dependencies: [
                "Spool",
                "SpoolServer",
                "Hiredis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP status reader: Hummingbird, Metrics and Prometheus live only here.
        .target(
            name: "SpoolServer",
            dependencies: [
                "Spool",
                "Hiredis",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("Resources")]
        ),
        .target(
            name: "SpoolTestSupport",
            dependencies: ["Hiredis", "Spool"],
            path: "Tests/SpoolTestSupport"
        ),
        .testTarget(name: "HiredisTests", dependencies: ["Hiredis", "SpoolTestSupport"]),
        .testTarget(
            name: "SpoolTests",
            dependencies: ["Spool", "Hiredis", "CCurl", "SpoolTestSupport"]
        ),
        .testTarget(
            name: "SpoolServerTests",
            dependencies: [
                "SpoolServer", "Spool", "Hiredis", "SpoolTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
