import Foundation
import LatheCore
import LatheTestSupport
import Testing

/// What the `lathe` process does when the machine says no: a file-size limit, a temporary a killed
/// run left behind.
@Suite(
    "Resource limits", .serialized,
    .enabled(if: LatheProcess.isAvailable, Comment(rawValue: LatheProcess.skipReason)))
struct ResourceLimitTests {
    /// Runs `lathe` under a file-size limit (RLIMIT_FSIZE, what `ulimit -f` sets); exit status and stderr.
    func captureLimited(fileSize: Int, _ arguments: [String], in work: URL) throws -> (status: Int32, errors: String) {
        let errors = work.appendingPathComponent("stderr.txt")
        try Data().write(to: errors)
        let handle = try FileHandle(forWritingTo: errors)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", "-c",
                "import os, resource, sys\nresource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2)\nos.execv(sys.argv[2], sys.argv[2:])",
                "\(fileSize)", LatheProcess.binary.path,
            ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, String(decoding: try Data(contentsOf: errors), as: UTF8.self))
    }

    @Test(
        "past a file-size limit: one line naming the destination, exit 1, no temporary (the signal used to kill it)",
        arguments: ["out.gguf", "out.safetensors", "out.lpack", "hf"])
    func fileSizeLimit(output: String) throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.safetensors")
        _ = try writeTiny(to: input)
        let destination = work.appendingPathComponent(output)
        let (status, errors) = try captureLimited(
            fileSize: 4096, ["convert", input.path, "-o", destination.path, "--type", "f32"], in: work)
        #expect(status == 1, "\(errors)")
        #expect(errors.hasPrefix("Error: ") && errors.split(separator: "\n").count == 1, "\(errors)")
        #expect(errors.contains(destination.path) && errors.contains("File too large"), "\(errors)")
        let left = try FileManager.default.contentsOfDirectory(atPath: work.path).sorted()
        #expect(left == ["stderr.txt", "tiny.safetensors"])
    }

    @Test("a temporary a killed run left beside the destination is named in a warning")
    func leftoverNamed() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.safetensors")
        _ = try writeTiny(to: input)
        let leftover = work.appendingPathComponent(".out.gguf.3jxaoleodszw7.tmp")
        try Data([1]).write(to: leftover)
        let result = try LatheProcess.capture([
            "convert", input.path, "-o", work.appendingPathComponent("out.gguf").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        #expect(
            result.errors.contains("warning: \(leftover.path) is a temporary of a run that did not finish"),
            "\(result.errors)")
        #expect(FileManager.default.fileExists(atPath: leftover.path))
    }
}
