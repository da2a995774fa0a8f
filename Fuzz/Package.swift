// swift-tools-version: 6.1
import PackageDescription

/// libFuzzer harnesses for every parser that reads user files. Built apart from Lathe itself because
/// every target, Lathe's readers included, is compiled with the fuzzer and address sanitizers:
/// `make fuzz` builds this package with `--sanitize fuzzer -Xswiftc -sanitize=fuzzer,address` and runs
/// each harness for a bounded number of executions (RELIABILITY.md has the results).
func harness(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: "fuzz-\(name)", dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: "Lathe") })
}

let package = Package(
    name: "LatheFuzz",
    dependencies: [.package(name: "Lathe", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "LatheCore", package: "Lathe")]),
        harness("gguf", ["FormatGGUF", "LatheCore"]),
        harness("safetensors", ["FormatSafetensors", "LatheCore"]),
        harness("lpack", ["FormatPacked", "LatheCore"]),
        harness("hf", ["FormatSafetensors", "LatheCore"]),
        harness("recipe", ["LathePipeline", "LatheBuiltins", "LatheCore"]),
        harness("archive", ["Compression", "LatheCore"]),
    ]
)
