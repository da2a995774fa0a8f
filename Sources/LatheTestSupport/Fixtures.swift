import Foundation

/// Locations the tests share: the package root, `shared/` data beside it, and the model cache.
public enum Fixtures {
    /// The package root, found from this file's path.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The SmolLM2 GGUF that `make setup` fetches, or `LATHE_MODEL` when set.
    public static var smolLM2: URL {
        if let override = ProcessInfo.processInfo.environment["LATHE_MODEL"] {
            return URL(fileURLWithPath: override)
        }
        return packageRoot.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    public static var smolLM2IsAvailable: Bool { FileManager.default.fileExists(atPath: smolLM2.path) }

    /// Why model tests are skipped, for the test report.
    public static let smolLM2SkipReason =
        "SmolLM2 GGUF not found in .cache/models: run `make setup` (or `make test`, which fetches it first)"

    /// A fresh empty temporary directory; the caller removes it (usually with a `defer`).
    public static func temporaryDirectory(_ label: String = "lathe-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
