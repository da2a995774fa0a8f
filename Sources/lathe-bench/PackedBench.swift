import ArgumentParser
import FormatPacked
import Foundation
import LatheBuiltins
import LatheCore
import LatheReport
import LatheRuntime
import LinearAlgebra

/// The packed format's figures: size and bits per weight by tensor class (stored and zstd),
/// load time, and prefill/decode speed of the low-bit kernels against the same runtime on the
/// same weights decoded to F32, side by side in one run.
struct PackedBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packed",
        abstract: "Size, load time and low-bit speed of an lpack model against the same model in F32."
    )

    @Argument(help: "The lpack model (members stored uncompressed).") var model: String
    @Option(help: "The same model written with --compress zstd, for the compressed sizes.") var compressed: String?
    @Option(help: "Comma-separated thread counts.") var threads = "1,2"
    @Option(help: "Prompt lengths for prefill.") var prompts = "128,512"
    @Option(help: "Tokens decoded after a 128-token prompt.") var decode = 64
    @Option(help: "Repetitions (median reported).") var repetitions = 5
    @Option(help: "Context for the KV-cache memory comparison.") var context = 2048

    func run() throws {
        let url = URL(fileURLWithPath: model)
        let graph = try ModelInput.open(url)
        try sizes(graph)
        let (packedLoad, packed) = try Self.timed { try LlamaWeights(ModelInput.open(url), lowBit: true) }
        let (floatLoad, floats) = try Self.timed { try LlamaWeights(ModelInput.open(url), lowBit: false) }
        print()
        print("| weights | in memory | load s |")
        print("|---|---|---|")
        print(String(format: "| packed (mapped) | %.1f MB | %.2f |", Double(packed.byteCount) / 1e6, packedLoad))
        print(String(format: "| F32 (decoded) | %.1f MB | %.2f |", Double(floats.byteCount) / 1e6, floatLoad))
        kvMemory(packed)
        print()
        print("| threads | measure | packed | F32 | packed / F32 speed |")
        print("|---|---|---|---|---|")
        BLAS.threadCount = 1
        for count in threads.split(separator: ",").compactMap({ Int($0) }) {
            for length in prompts.split(separator: ",").compactMap({ Int($0) }) {
                let times = try [packed, floats].map {
                    try RuntimeBench.prefillSeconds($0, length: length, threads: count, repetitions: repetitions)
                }
                print(
                    String(
                        format: "| %d | prefill %d tokens (tokens/s) | %.0f | %.0f | %.2f× |", count, length,
                        Double(length) / times[0], Double(length) / times[1], times[1] / times[0]))
            }
            let times = try [packed, floats].map {
                try RuntimeBench.decodeSeconds($0, tokens: decode, threads: count, repetitions: repetitions)
            }
            print(
                String(
                    format: "| %d | decode %d tokens (tokens/s) | %.1f | %.1f | %.2f× |", count, decode,
                    Double(decode) / times[0], Double(decode) / times[1], times[1] / times[0]))
        }
    }

    /// Bytes and bits per weight by tensor class, as stored and compressed.
    func sizes(_ graph: ModelGraph) throws {
        var classes: [String: (elements: Int, bytes: Int, compressed: Int, dtypes: Set<String>)] = [:]
        let compressedSizes = try self.compressed.map { try PackedReader.storedSizes(URL(fileURLWithPath: $0)) }
        for tensor in graph.tensors {
            let key = VerificationReport.ModelSummary.tensorClass(tensor.name)
            var entry = classes[key] ?? (0, 0, 0, [])
            entry.elements += try tensor.info.shape.elementCount()
            entry.bytes += try tensor.info.byteCount()
            entry.compressed += compressedSizes?[tensor.name] ?? 0
            entry.dtypes.insert("\(tensor.info.dtype)")
            classes[key] = entry
        }
        print("| tensor class | encodings | weights | bytes | bits/weight | zstd bytes | zstd bits/weight |")
        print("|---|---|---|---|---|---|---|")
        var totals = (0, 0, 0)
        for (name, entry) in classes.sorted(by: { $0.value.bytes > $1.value.bytes }) {
            print(
                String(
                    format: "| %@ | %@ | %d | %d | %.3f | %@ | %@ |", name,
                    entry.dtypes.sorted().joined(separator: ", "),
                    entry.elements, entry.bytes, Double(entry.bytes * 8) / Double(entry.elements),
                    compressed == nil ? "–" : "\(entry.compressed)",
                    compressed == nil
                        ? "–" : String(format: "%.3f", Double(entry.compressed * 8) / Double(entry.elements))))
            totals = (totals.0 + entry.elements, totals.1 + entry.bytes, totals.2 + entry.compressed)
        }
        let fileSize = (try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? 0
        let compressedFile = try compressed.flatMap { _ in
            try FileManager.default.attributesOfItem(atPath: self.compressed!)[.size] as? Int
        }
        print(
            String(
                format: "| all (file: %d bytes%@) | | %d | %d | %.3f | %@ | %@ |", fileSize,
                compressedFile.map { ", zstd file: \($0) bytes" } ?? "", totals.0, totals.1,
                Double(totals.1 * 8) / Double(totals.0), compressed == nil ? "–" : "\(totals.2)",
                compressed == nil ? "–" : String(format: "%.3f", Double(totals.2 * 8) / Double(totals.0))))
    }

    /// The KV cache the session keeps at `context` tokens against an F16 cache.
    func kvMemory(_ weights: LlamaWeights) {
        let c = weights.config
        let session = LlamaSession(weights: weights, maxContext: 1)
        let quantized = session.kvCacheBytesPerToken * context
        let half = 2 * 2 * c.layerCount * c.kvHeadCount * c.headDim * context
        print()
        print(
            String(
                format: "KV cache at %d tokens: %.2f MB quantized against %.2f MB in F16 (%.3f×)", context,
                Double(quantized) / 1e6, Double(half) / 1e6, Double(quantized) / Double(half)))
    }

    static func timed<T>(_ body: () throws -> T) throws -> (Double, T) {
        let start = DispatchTime.now().uptimeNanoseconds
        let value = try body()
        return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, value)
    }
}
