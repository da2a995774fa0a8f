import Foundation

/// Runs the Python oracle scripts in `Tests/Oracles` with the venv `make oracles` creates.
public enum Oracle {
    public static var python: URL {
        if let override = ProcessInfo.processInfo.environment["LATHE_ORACLE_PYTHON"] {
            return URL(fileURLWithPath: override)
        }
        return Fixtures.packageRoot.appendingPathComponent(".cache/venv/bin/python")
    }

    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    public static let skipReason =
        "Python oracles (gguf, safetensors, tokenizers) not installed: run `make oracles` (or `make test`)"

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `Tests/Oracles/<script>` with `arguments`; throws with its stderr when it fails.
    @discardableResult
    public static func run(_ script: String, _ arguments: [String]) throws -> String {
        try runProcess(
            python, [Fixtures.packageRoot.appendingPathComponent("Tests/Oracles/\(script)").path] + arguments)
    }

    /// Runs a program and returns its standard output; throws with its standard error when it fails.
    public static func runProcess(_ executable: URL, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            // Some tools (swift build) report their errors on standard output: keep the end of both.
            let report = String(decoding: err, as: UTF8.self) + String(decoding: out, as: UTF8.self)
            throw Failure(
                description:
                    "\(executable.lastPathComponent) \(arguments.first ?? "") failed (\(process.terminationStatus)): "
                    + String(report.suffix(3000)))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Runs a script that writes JSON to the path given as its last argument, and parses that JSON.
    public static func json(_ script: String, _ arguments: [String]) throws -> Any {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("oracle-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: out) }
        try run(script, arguments + [out.path])
        return try JSONSerialization.jsonObject(with: Data(contentsOf: out))
    }
}
