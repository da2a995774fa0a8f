// swift-tools-version: 6.1
import PackageDescription

/// An in-process Lathe plugin: a separate package that depends on Lathe's library products, adds a
/// pass (`scale-norms`) to the built-in registry and ships the CLI with it as `lathe-plus`.
let package = Package(
    name: "LatheInProcessPlugin",
    dependencies: [.package(name: "Lathe", path: "../..")],
    targets: [
        .executableTarget(
            name: "lathe-plus",
            dependencies: [
                .product(name: "LatheCore", package: "Lathe"),
                .product(name: "LatheBuiltins", package: "Lathe"),
                .product(name: "LatheCLI", package: "Lathe"),
            ]
        )
    ]
)
