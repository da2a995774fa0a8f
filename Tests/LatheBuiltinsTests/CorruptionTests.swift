import Foundation
import LatheBuiltins
import LatheCore
import LatheTestSupport
import Testing

@Suite(
    "Corrupted inputs", .serialized, .enabled(if: LatheProcess.isAvailable, Comment(rawValue: LatheProcess.skipReason)))
struct CorruptionTests {
    /// The valid files the corruptions start from: the tiny model as GGUF (matrices in Q4_0),
    /// safetensors (F32) and lpack (F32, plus a packed int4/int8 matrix).
    static func validFiles(in directory: URL) throws -> (gguf: URL, safetensors: URL, lpack: URL) {
        let registry = LatheBuiltins.registry
        var quantized = try TinyModel.graph()
        for tensor in quantized.tensors where tensor.info.shape.dimensions.count == 2 {
            try quantized.replace(TensorCodec.streamingConversion(tensor, to: .quantized(.ggml(.q4_0))))
        }
        let gguf = directory.appendingPathComponent("valid.gguf")
        _ = try registry.writer("gguf").write(quantized, to: gguf, options: WriteOptions())
        let safetensors = directory.appendingPathComponent("valid.safetensors")
        try writeTiny(to: safetensors)

        let encoding = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 64, bits: 4, slot: 0), .init(start: 64, count: 64, bits: 8, slot: 1)],
            slotCount: 2)
        var payload: [UInt8] = []
        for row in 0..<8 {
            for scale in [Float(0.01), 0.002] { withUnsafeBytes(of: scale * Float(row + 1)) { payload += $0 } }
            payload += (0..<encoding.rowCodeBytes).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ row) }
        }
        var packed = try TinyModel.graph()
        try packed.append(
            Tensor(
                info: TensorInfo(name: "extra.packed", dtype: .quantized(.packed(encoding)), shape: Shape([8, 128])),
                storage: TensorStorage(bytes: payload)))
        let lpack = directory.appendingPathComponent("valid.lpack")
        _ = try registry.writer("lpack").write(packed, to: lpack, options: WriteOptions())
        return (gguf, safetensors, lpack)
    }

    @Test("every corruption class: one line naming the file, exit status 1, nothing written")
    func corruptedInputs() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let valid = try Self.validFiles(in: work)
        let marker = "lathe-escaped-\(UUID().uuidString).txt"
        func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }
        let groups: [(format: String, output: String, cases: [Corruption])] = [
            ("gguf", "gguf", CorruptionGenerator.gguf(try bytes(valid.gguf))),
            ("safetensors", "gguf", try CorruptionGenerator.safetensors(try bytes(valid.safetensors))),
            ("lpack", "lpack", try CorruptionGenerator.lpack(try bytes(valid.lpack), packed: "extra.packed")),
            ("tar", "gguf", CorruptionGenerator.escapingArchives(marker: marker)),
        ]
        // The valid files convert: each failure below is the damage's doing.
        for (url, output) in [(valid.gguf, "gguf"), (valid.safetensors, "gguf"), (valid.lpack, "lpack")] {
            let target = work.appendingPathComponent("check.\(output)")
            let (status, _, errors) = try LatheProcess.capture(["convert", url.path, "-o", target.path, "--force"])
            #expect(status == 0, "\(url.lastPathComponent) does not convert: \(errors)")
        }

        let outputs = work.appendingPathComponent("outputs")
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        var seen: Set<Corruption.Kind> = []
        var count = 0
        var log: [String] = []
        for group in groups {
            for corruption in group.cases {
                count += 1
                let input = work.appendingPathComponent("input-\(count).\(group.format)")
                try Data(corruption.bytes).write(to: input)
                let output = outputs.appendingPathComponent("output-\(count).\(group.output)")
                let (status, _, errors) = try LatheProcess.capture(["convert", input.path, "-o", output.path])
                let lines = errors.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                let label = "\(group.format), \(corruption.kind.rawValue): \(corruption.detail)"
                #expect(status == 1, "\(label): exit status \(status); stderr: \(errors)")
                #expect(lines.count == 1, "\(label): \(lines.count) lines on stderr: \(errors)")
                #expect(
                    lines.first?.contains(input.lastPathComponent) == true,
                    "\(label): the message names no file: \(errors)")
                #expect(
                    try FileManager.default.contentsOfDirectory(atPath: outputs.path).isEmpty,
                    "\(label): something was written")
                try FileManager.default.removeItem(at: input)
                seen.insert(corruption.kind)
                log.append(
                    "| \(group.format) | \(corruption.kind.rawValue) | \(corruption.detail) | \(status) | `\(lines.first ?? "")` |"
                )
            }
        }
        // LATHE_CORRUPTION_LOG=FILE keeps every case and its message (RELIABILITY.md quotes them).
        if let path = ProcessInfo.processInfo.environment["LATHE_CORRUPTION_LOG"] {
            try log.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(
            seen == Set(Corruption.Kind.allCases),
            "classes not generated: \(Set(Corruption.Kind.allCases).subtracting(seen))")
        for place in [
            work, work.deletingLastPathComponent(), URL(fileURLWithPath: "/"), URL(fileURLWithPath: "/tmp"),
            URL(fileURLWithPath: NSTemporaryDirectory()),
        ] {
            #expect(
                !FileManager.default.fileExists(atPath: place.appendingPathComponent(marker).path),
                "an archive escaped into \(place.path)")
        }
    }
}
