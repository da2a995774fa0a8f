import ArgumentParser
import Foundation
import LinearAlgebra

/// `lathe-bench`: micro-benchmarks whose figures go into BENCHMARKS.md (run by `make bench`).
@main
struct LatheBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lathe-bench",
        abstract: "Measure the kernels Lathe relies on.",
        subcommands: [SGEMM.self, RuntimeBench.self, PackedBench.self, Synthesize.self]
    )
}

/// SGEMM throughput for the runtime's shapes, against the machine's measured peak.
struct SGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "SGEMM GFLOP/s for the runtime's shapes as a fraction of a large square SGEMM.",
        discussion:
            "Shapes are M×K×N: M tokens times a K→N projection (C[M,N] = A[M,K]·B[K,N]ᵀ, B stored [N,K] like a weight)."
    )

    @Option(help: "Comma-separated BLAS thread counts.") var threads = "1,2"
    @Option(help: "Timed repetitions per shape (the median is reported).") var repetitions = 7
    @Option(help: "Side of the square SGEMM that measures the peak.") var peakSize = 2048
    @Option(help: "Also time each shape as tiles of this many output columns (0: off), as the runtime runs it.")
    var tile = 0

    func run() throws {
        let shapes = [(512, 576, 576), (512, 576, 1536), (512, 1536, 576), (512, 576, 49152)]
        let threadCounts = threads.split(separator: ",").compactMap { Int($0) }
        print("| threads | shape M×K×N | median ms | GFLOP/s | fraction of peak |")
        print("|---|---|---|---|---|")
        for count in threadCounts {
            BLAS.threadCount = count
            let peak = gflops(m: peakSize, k: peakSize, n: peakSize).rate
            print("| \(count) | peak \(peakSize)³ | – | \(format(peak)) | 1.00 |")
            for (m, k, n) in shapes {
                let (ms, rate) = gflops(m: m, k: k, n: n)
                print("| \(count) | \(m)×\(k)×\(n) | \(format(ms)) | \(format(rate)) | \(format(rate / peak)) |")
                if tile > 0 {
                    let (tiledMs, tiledRate) = gflops(m: m, k: k, n: n, tile: tile)
                    print(
                        "| \(count) | \(m)×\(k)×\(n) in \(tile)-column tiles | \(format(tiledMs)) | \(format(tiledRate)) | \(format(tiledRate / peak)) |"
                    )
                }
            }
        }
    }

    private func gflops(m: Int, k: Int, n: Int, tile: Int? = nil) -> (milliseconds: Double, rate: Double) {
        var generator = SeededGenerator(seed: 1)
        let a = (0..<(m * k)).map { _ in Float(generator.nextUniform() - 0.5) }
        let b = (0..<(n * k)).map { _ in Float(generator.nextUniform() - 0.5) }
        var c = [Float](repeating: 0, count: m * n)
        var times: [Double] = []
        for iteration in 0...repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        let width = tile ?? n
                        for first in stride(from: 0, to: n, by: width) {
                            BLAS.gemm(
                                transB: .transposed, m: m, n: min(width, n - first), k: k, a: pa.baseAddress!, lda: k,
                                b: pb.baseAddress! + first * k, ldb: k, c: pc.baseAddress! + first, ldc: n)
                        }
                    }
                }
            }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            if iteration > 0 { times.append(elapsed) }  // the first run warms caches and threads
        }
        times.sort()
        let median = times[times.count / 2]
        return (median, 2 * Double(m) * Double(n) * Double(k) / (median * 1e6))
    }

    private func format(_ value: Double) -> String { String(format: value < 10 ? "%.2f" : "%.1f", value) }
}
