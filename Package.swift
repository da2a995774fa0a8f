// swift-tools-version: 6.1
import PackageDescription

/// Settings every Swift target shares: Swift 6 mode plus the upcoming features that keep
/// existentials and imports explicit (style.md §4.6).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Lathe",
    products: [
        .executable(name: "lathe", targets: ["lathe"]),
        .library(name: "LatheCore", targets: ["LatheCore"]),
        .library(name: "LatheBuiltins", targets: ["LatheBuiltins"]),
        .library(name: "LatheCLI", targets: ["LatheCLI"]),
        // The readers on their own, for embedding and for the fuzz harnesses in Fuzz/.
        .library(name: "FormatGGUF", targets: ["FormatGGUF"]),
        .library(name: "FormatSafetensors", targets: ["FormatSafetensors"]),
        .library(name: "FormatPacked", targets: ["FormatPacked"]),
        .library(name: "LathePipeline", targets: ["LathePipeline"]),
        .library(name: "Compression", targets: ["Compression"]),
        .plugin(name: "LatheCommand", targets: ["LatheCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // MARK: - System libraries (module map + shim header only)
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACKE", pkgConfig: "lapacke", providers: [.apt(["liblapacke-dev"])]),

        // MARK: - Foundations
        .target(name: "Compression", dependencies: ["CZstd", "CArchive"], swiftSettings: swiftSettings),
        .target(name: "LinearAlgebra", dependencies: ["COpenBLAS", "CLAPACKE"], swiftSettings: swiftSettings),
        .target(name: "LatheCore", swiftSettings: swiftSettings),
        // Low-bit kernels (AVX2 with a portable fallback, chosen at run time), and the SIMD encoders
        // LatheBuiltins installs into LatheCore's `EncoderAcceleration`.
        .target(name: "CKernels"),

        // MARK: - Formats and passes (each depends on LatheCore only; registered in LatheBuiltins)
        .target(name: "FormatGGUF", dependencies: ["LatheCore"], swiftSettings: swiftSettings),
        .target(name: "FormatSafetensors", dependencies: ["LatheCore"], swiftSettings: swiftSettings),
        .target(name: "FormatPacked", dependencies: ["LatheCore", "Compression"], swiftSettings: swiftSettings),
        .target(name: "PassEncoding", dependencies: ["LatheCore"], swiftSettings: swiftSettings),
        .target(name: "PassSurgery", dependencies: ["LatheCore"], swiftSettings: swiftSettings),
        .target(name: "PassCalibration", dependencies: ["LatheCore"], swiftSettings: swiftSettings),
        .target(name: "PassPCA", dependencies: ["LatheCore", "LinearAlgebra"], swiftSettings: swiftSettings),
        .target(name: "PassRotate", dependencies: ["LatheCore", "LinearAlgebra"], swiftSettings: swiftSettings),
        .target(name: "PassWeightQuant", dependencies: ["LatheCore", "LinearAlgebra"], swiftSettings: swiftSettings),
        .target(name: "PassActivationQuant", dependencies: ["LatheCore"], swiftSettings: swiftSettings),
        .target(name: "PassExternal", dependencies: ["LatheCore"], swiftSettings: swiftSettings),

        // MARK: - Pipeline: recipes, planning, running
        .target(
            name: "LathePipeline", dependencies: ["LatheCore", .product(name: "Yams", package: "Yams")],
            resources: [.copy("Recipes")], swiftSettings: swiftSettings),

        // MARK: - Runtime (never imports formats or passes)
        .target(
            name: "LatheRuntime", dependencies: ["LatheCore", "LinearAlgebra", "CKernels"], swiftSettings: swiftSettings
        ),

        // MARK: - Reports (plain data to self-contained HTML)
        .target(name: "LatheReport", dependencies: ["LatheCore"], swiftSettings: swiftSettings),

        // MARK: - Assembly
        .target(
            name: "LatheBuiltins",
            dependencies: [
                "LatheCore", "CKernels", "Compression", "FormatGGUF", "FormatSafetensors", "FormatPacked",
                "PassEncoding",
                "PassSurgery",
                "PassCalibration", "PassPCA", "PassRotate", "PassWeightQuant", "PassActivationQuant", "PassExternal",
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "LatheCLI",
            dependencies: [
                "LatheCore", "LatheBuiltins", "LatheRuntime", "LathePipeline", "LinearAlgebra", "LatheReport",
                "PassExternal", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "lathe", dependencies: ["LatheCLI"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "lathe-bench",
            dependencies: [
                "LinearAlgebra", "LatheCore", "LatheBuiltins", "LatheRuntime", "FormatPacked", "LatheReport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .plugin(
            name: "LatheCommand",
            capability: .command(
                intent: .custom(verb: "lathe", description: "Run the lathe CLI (inspect, convert, verify, …)"),
                permissions: [
                    .writeToPackageDirectory(reason: "lathe writes converted models to the path given by --output")
                ]
            ),
            dependencies: ["lathe"]
        ),

        // MARK: - Test support and unit test bundles
        .target(name: "LatheTestSupport", dependencies: ["LatheCore", "LinearAlgebra"], swiftSettings: swiftSettings),
        .testTarget(
            name: "FormatGGUFTests", dependencies: ["FormatGGUF", "LatheCore", "LatheTestSupport", "LinearAlgebra"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LatheReportTests", dependencies: ["LatheReport", "LatheCore", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FormatPackedTests",
            dependencies: ["Compression", "FormatPacked", "PassEncoding", "LatheCore", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FormatSafetensorsTests",
            dependencies: ["FormatSafetensors", "LatheCore", "LatheTestSupport", "LinearAlgebra"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LatheRuntimeTests",
            dependencies: [
                "LatheRuntime", "LatheCore", "LatheBuiltins", "FormatGGUF", "FormatSafetensors", "LatheTestSupport",
                "LinearAlgebra",
                "CKernels", "PassWeightQuant", "PassActivationQuant", "PassEncoding",
            ],
            exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(
            name: "LathePipelineTests",
            dependencies: ["LathePipeline", "LatheBuiltins", "LatheCore", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LatheBuiltinsTests",
            dependencies: [
                "LatheBuiltins", "LatheCLI", "LatheCore", "LathePipeline", "Compression", "FormatGGUF",
                "LatheTestSupport", "LatheRuntime", "LinearAlgebra", "CKernels", "PassExternal",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassSurgeryTests", dependencies: ["PassSurgery", "LatheCore", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassCalibrationTests", dependencies: ["PassCalibration", "LatheCore", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassPCATests", dependencies: ["PassPCA", "LatheCore", "LatheTestSupport", "LinearAlgebra"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassRotateTests", dependencies: ["PassRotate", "LatheCore", "LinearAlgebra"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassWeightQuantTests", dependencies: ["PassWeightQuant", "LatheCore", "LinearAlgebra"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassExternalTests",
            dependencies: ["PassExternal", "LatheCore", "LatheBuiltins", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassEncodingTests", dependencies: ["PassEncoding", "LatheCore", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PassActivationQuantTests",
            dependencies: ["PassActivationQuant", "LatheCore", "LatheTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CompressionTests", dependencies: ["Compression", "LatheTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LatheCoreTests", dependencies: ["LatheCore", "LatheTestSupport"], exclude: ["Fixtures"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LatheCLITests",
            dependencies: [
                "LatheCLI", "LatheBuiltins", "LatheCore", "LathePipeline", "LatheTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["Snapshots"],
            swiftSettings: swiftSettings),
    ]
)
