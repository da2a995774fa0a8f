import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LinearAlgebra

/// Prefill and decode speed of the reference runtime against two rooflines measured in the same run:
/// the SGEMM peak (for prefill) and memory copy bandwidth (for decode, which reads every weight once
/// per token).
struct RuntimeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract: "Prefill and decode tokens/s on a model, with FLOP and bandwidth efficiency."
    )

    @Argument(help: "The model.") var model: String
    @Option(help: "Comma-separated BLAS thread counts.") var threads = "1,2"
    @Option(help: "Prompt lengths for prefill.") var prompts = "128,512"
    @Option(help: "Tokens decoded after a 128-token prompt.") var decode = 64
    @Option(help: "Repetitions (median reported).") var repetitions = 5
    @Flag(help: "Decode packed weights to F32 (the simulated path) instead of running the low-bit kernels.")
    var f32 = false

    func run() throws {
        let graph = try ModelInput.open(URL(fileURLWithPath: model))
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let weights = try LlamaWeights(graph, lowBit: !f32)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        print(
            String(
                format: "weights: %.1f MB in memory (%@), loaded in %.2f s; KV cache %d bytes per token",
                Double(weights.byteCount) / 1e6,
                f32 ? "F32" : "as stored", loadSeconds,
                LlamaSession(weights: weights, maxContext: 1).kvCacheBytesPerToken))
        let c = weights.config
        let layerParameters =
            c.layerCount
            * (c.hiddenSize * (c.headCount + 2 * c.kvHeadCount) * c.headDim + c.headCount * c.headDim * c.hiddenSize
                + 3 * c.hiddenSize * c.ffnSize)
        let headParameters = c.vocabSize * c.hiddenSize
        let weightBytes = 4 * (layerParameters + headParameters)
        let bandwidth = Self.copyBandwidth()
        print("| threads | measure | median | tokens/s | roofline | efficiency |")
        print("|---|---|---|---|---|---|")
        for count in threads.split(separator: ",").compactMap({ Int($0) }) {
            BLAS.threadCount = count
            let peak = Self.sgemmPeak()
            // Prefill as `lathe eval` runs it: the session splits the work over single-threaded BLAS.
            BLAS.threadCount = 1
            for length in prompts.split(separator: ",").compactMap({ Int($0) }) {
                let seconds = try Self.prefillSeconds(weights, length: length, threads: count, repetitions: repetitions)
                // Per prompt: every layer matrix for every token, attention scores and mixing, one output row.
                let attention = 4 * c.layerCount * c.headCount * c.headDim * length * (length + 1) / 2
                let flops = Double(2 * layerParameters * length + attention + 2 * headParameters)
                let rate = Double(length) / seconds
                print(
                    String(
                        format: "| %d | prefill %d tokens | %.1f ms | %.0f | %.0f GFLOP/s SGEMM peak | %.0f %% |",
                        count, length, seconds * 1000,
                        rate, peak, flops / seconds / 1e9 / peak * 100))
            }
            // Decoding as `lathe run` runs it: the session's workers over row ranges, BLAS single-threaded.
            let seconds = try Self.decodeSeconds(weights, tokens: decode, threads: count, repetitions: repetitions)
            let rate = Double(decode) / seconds
            let limit = bandwidth / Double(weightBytes)
            print(
                String(
                    format:
                        "| %d | decode %d tokens | %.1f ms/token | %.1f | %.1f tokens/s (%.1f GB/s copy, %.0f MB of F32 weights) | %.0f %% |",
                    count, decode, seconds / Double(decode) * 1000, rate, limit, bandwidth / 1e9,
                    Double(weightBytes) / 1e6, rate / limit * 100))
        }
    }

    /// Median seconds to feed a `length`-token prompt and compute its last row's logits.
    static func prefillSeconds(_ weights: LlamaWeights, length: Int, threads: Int, repetitions: Int) throws -> Double {
        let session = LlamaSession(weights: weights, maxContext: length, threads: threads)
        let tokens = (0..<length).map { ($0 * 7919) % weights.config.vocabSize }
        return try median(repetitions) {
            session.reset()
            let hidden = try session.forward(tokens)
            _ = session.logits(hidden, rows: (length - 1)..<length)
        }
    }

    /// Median seconds to decode `tokens` tokens greedily after a 128-token prompt (the prompt excluded).
    static func decodeSeconds(_ weights: LlamaWeights, tokens: Int, threads: Int, repetitions: Int) throws -> Double {
        let c = weights.config
        let session = LlamaSession(weights: weights, maxContext: 128 + tokens, threads: threads)
        let prompt = (0..<128).map { ($0 * 7919) % c.vocabSize }
        let total = try median(repetitions) {
            session.reset()
            var hidden = try session.forward(prompt)
            for _ in 0..<tokens {
                let rows = hidden.count / c.hiddenSize
                let logits = session.logits(hidden, rows: (rows - 1)..<rows)
                hidden = try session.forward([Generator.greedyToken(logits, vocab: c.vocabSize)])
            }
        }
        let prefill = try median(repetitions) {
            session.reset()
            _ = try session.forward(prompt)
        }
        return total - prefill
    }

    static func median(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for iteration in 0...repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            if iteration > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        return times.sorted()[times.count / 2]
    }

    /// GFLOP/s of a 2048³ SGEMM with the current thread count.
    static func sgemmPeak() -> Double {
        let n = 2048
        let a = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let seconds = median(3) {
            a.withUnsafeBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(
                        m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pa.baseAddress!, ldb: n, c: pc.baseAddress!,
                        ldc: n)
                }
            }
        }
        return 2 * pow(Double(n), 3) / seconds / 1e9
    }

    /// Bytes per second of copying a 512 MiB buffer (read + write counted as the bytes read).
    static func copyBandwidth() -> Double {
        let count = 512 << 20
        let source = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        defer {
            source.deallocate()
            target.deallocate()
        }
        memset(source, 1, count)
        memset(target, 0, count)
        let seconds = median(3) { memcpy(target, source, count) }
        return Double(count) / seconds
    }
}
