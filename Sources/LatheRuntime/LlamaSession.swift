import CKernels
import Foundation
import LatheCore
import LinearAlgebra

/// One sequence being evaluated: the KV cache and scratch buffers over shared weights. Feeding
/// tokens appends them at the current position; prefill runs a whole batch through BLAS GEMMs,
/// decoding is the same code with one token.
public final class LlamaSession {
    public let weights: LlamaWeights
    public let maxContext: Int
    /// Cores the session spreads its own work over (GEMM columns, attention heads, element-wise
    /// loops). Use it with BLAS single-threaded (`BLAS.threadCount = 1`): OpenBLAS's idle workers spin
    /// between calls and take the cores from everything that is not a GEMM. With BLAS threads and
    /// `threads == 1`, BLAS alone parallelises (better for decoding, a chain of GEMVs). The session
    /// never changes the process-wide BLAS setting, which is not safe while other threads use BLAS.
    public let threads: Int
    public private(set) var position = 0
    /// Sees the activations at the named sites of every layer (calibration statistics, hooks).
    public var observer: (any ActivationObserver)?
    /// The model layer the session's first layer is, as the observer is told (a session over one
    /// layer of a larger model, `LlamaWeights.withOnlyLayer`).
    public var firstLayer = 0
    /// Packed weights multiply a prompt's quantized activations in integers (`lk_gemm_packed_u8`),
    /// each token getting the bits the token-by-token path gives it. False: in floats, the fake-quantized
    /// activations times the decoded weights, bit for bit as the simulated model computes them
    /// (slower; for checking a packed file against its simulation).
    public var integerPrompts = true

    let config: LlamaConfig
    var keys: [[Float]]
    var values: [[Float]]
    let cosTable: [Float]
    let sinTable: [Float]
    private let downHadamard: HadamardPlan?
    let scratch = PackedScratch()
    /// The workers behind every parallel loop of this session.
    let pool: WorkerPool
    /// The caches in quantized form, when the scheme quantizes them (else `keys`/`values` hold floats).
    let keyCache: QuantizedKVCache?
    let valueCache: QuantizedKVCache?
    /// One layer's quantized cache dequantized for prefill's GEMMs (and for decoding when the fused
    /// path does not apply: see `attentionBlock`).
    var keyScratch: [Float] = []
    var valueScratch: [Float] = []
    /// Where each KV head lies in a record of the quantized caches (decoding's fused attention).
    let keyPieces: [[lk_kv_piece]]
    let valuePieces: [[lk_kv_piece]]
    /// Decoding's attention probabilities: the group of query heads reading KV head g keeps its
    /// `groupSize × span` rows from `g · groupSize · maxContext` on (room for `heads × maxContext`).
    var attentionScores: [Float] = []
    /// Decoding attention split over spans of the context: each (KV head, span)'s unnormalised output,
    /// then its heads' maxima and sums (`attendQuantized`).
    var attentionPartials: [Float] = []

    /// `quantizedCache` keeps a quantized KV cache in its quantized form (false: fake-quantized
    /// floats, the simulated path).
    public init(weights: LlamaWeights, maxContext: Int, threads: Int = 1, quantizedCache: Bool = true) {
        self.weights = weights
        self.maxContext = maxContext
        self.threads = max(1, threads)
        pool = WorkerPool(threads: self.threads)
        config = weights.config
        let kvDim = config.kvHeadCount * config.headDim
        let layers = config.layerCount
        keyCache =
            quantizedCache
            ? weights.quantization.keys.flatMap {
                QuantizedKVCache($0, width: kvDim, layers: layers, maxContext: maxContext)
            } : nil
        valueCache =
            quantizedCache
            ? weights.quantization.values.flatMap {
                QuantizedKVCache($0, width: kvDim, layers: layers, maxContext: maxContext)
            } : nil
        let floats = [Float](repeating: 0, count: maxContext * kvDim)
        keys = Array(repeating: keyCache == nil ? floats : [], count: layers)
        values = Array(repeating: valueCache == nil ? floats : [], count: layers)
        if keyCache != nil { keyScratch = floats }
        if valueCache != nil { valueScratch = floats }
        let (kvHeads, headDim) = (config.kvHeadCount, config.headDim)
        keyPieces = keyCache.map { cache in (0..<kvHeads).map { cache.pieces(head: $0, headDim: headDim) } } ?? []
        valuePieces = valueCache.map { cache in (0..<kvHeads).map { cache.pieces(head: $0, headDim: headDim) } } ?? []
        (cosTable, sinTable) = Self.ropeTables(config, maxContext: maxContext, divisors: weights.ropeDivisors)
        // LlamaWeights checked that the order is the FFN size and has a Hadamard matrix.
        downHadamard = weights.online.downProjectionHadamard.flatMap { try? HadamardPlan(order: $0) }
    }

    /// Forgets the sequence (the cache is reused).
    public func reset() { position = 0 }

    /// Rewinds to an earlier position, keeping the cache before it.
    public func truncate(to newPosition: Int) {
        precondition(newPosition <= position, "cannot rewind forward")
        position = newPosition
    }

    /// Runs `tokens` at the current position and returns the final, normalised hidden states
    /// (`tokens.count × hidden`). `observe` sees the residual stream after each layer.
    public func forward(_ tokens: [Int], observe: ((_ layer: Int, _ hidden: [Float]) -> Void)? = nil) throws -> [Float]
    {
        let t = tokens.count
        guard t > 0 else { return [] }
        guard position + t <= maxContext else {
            throw LatheError.invalidValue(
                field: "context", value: "\(position + t) tokens",
                expected: "at most \(maxContext) positions, this session's context")
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw LatheError.invalidValue(field: "token id", value: "\(bad)", expected: "0..<\(config.vocabSize)")
        }
        return run(tokens, observe: observe)
    }

    private func run(_ tokens: [Int], observe: ((_ layer: Int, _ hidden: [Float]) -> Void)?) -> [Float] {
        let t = tokens.count
        let h = config.hiddenSize
        var x = Self.overwritten(t * h)
        weights.embedding.withUnsafeBufferPointer { e in
            for (row, token) in tokens.enumerated() {
                for j in 0..<h { x[row * h + j] = e[token * h + j] }
            }
        }
        for layer in 0..<config.layerCount {
            attentionBlock(layer, &x, tokens: t)
            feedForwardBlock(layer, &x, tokens: t)
            observe?(layer, x)
        }
        position += t
        return Self.rmsNorm(x, weights.finalNorm, rows: t, epsilon: config.normEpsilon, pool: pool)
    }

    /// Runs the session's layers on residual-stream states `x` (`tokens × hidden`, the output of the
    /// layers before them) at the current position, leaving their output in `x`: no embedding, no
    /// final norm. With one-layer sessions this walks a model a layer at a time.
    public func forwardLayers(_ x: inout [Float], tokens t: Int) throws {
        guard t > 0, x.count == t * config.hiddenSize else {
            throw LatheError.invalidValue(
                field: "hidden states", value: "\(x.count) values", expected: "\(t) × \(config.hiddenSize)")
        }
        guard position + t <= maxContext else {
            throw LatheError.invalidValue(
                field: "context", value: "\(position + t) tokens",
                expected: "at most \(maxContext) positions, this session's context")
        }
        for layer in 0..<config.layerCount {
            attentionBlock(layer, &x, tokens: t)
            feedForwardBlock(layer, &x, tokens: t)
        }
        position += t
    }

    /// Logits for the given rows of `hidden` (`rows.count × vocab`).
    public func logits(_ hidden: [Float], rows: Range<Int>) -> [Float] {
        let h = config.hiddenSize
        let vocab = config.vocabSize
        guard !rows.isEmpty else { return [] }
        let rowStart = rows.lowerBound * h
        var x = Array(hidden[rowStart..<(rowStart + rows.count * h)])
        return project(&x, rows: rows.count, weights.outputHead, out: vocab, in: h, quantizer: nil, site: "head")
    }

    // MARK: - Blocks

    private func attentionBlock(_ layer: Int, _ x: inout [Float], tokens t: Int) {
        let w = weights.layers[layer]
        let (h, hd) = (config.hiddenSize, config.headDim)
        let (heads, kvHeads) = (config.headCount, config.kvHeadCount)
        let (qDim, kvDim) = (heads * hd, kvHeads * hd)
        var normed = Self.rmsNorm(x, w.attentionNorm, rows: t, epsilon: config.normEpsilon, pool: pool)
        notify(.attentionInput, layer, normed, rows: t, width: h)
        let site = ActivationSite.attentionInput.rawValue
        let fused = project(
            &normed, rows: t, w.qkv, out: qDim + 2 * kvDim, in: h, quantizer: weights.quantization.activations[site],
            site: site)
        var (q, k, v) = Self.splitColumns(fused, rows: t, widths: (qDim, kvDim, kvDim))
        notify(.values, layer, v, rows: t, width: kvDim)
        if valueCache == nil { quantize(&v, weights.quantization.values, rows: t) }
        applyRope(&q, rows: t, heads: heads)
        applyRope(&k, rows: t, heads: kvHeads)
        if let rotation = w.queryKeyRotation {
            rotateHeads(&q, tokens: t, heads: heads, by: rotation)
            rotateHeads(&k, tokens: t, heads: kvHeads, by: rotation)
        }
        notify(.rotatedKeys, layer, k, rows: t, width: kvDim)
        if keyCache == nil { quantize(&k, weights.quantization.keys, rows: t) }
        let start = position
        let span = start + t
        store(k, into: keyCache, or: &keys[layer], layer: layer, at: start)
        store(v, into: valueCache, or: &values[layer], layer: layer, at: start)
        var attended = Self.overwritten(t * qDim)
        if t == 1, let keyCache, let valueCache, hd <= 512,
            !keyCache.layersWithRawParts.contains(layer), !valueCache.layersWithRawParts.contains(layer)
        {
            attendQuantized(layer, q, span: span, keyCache, valueCache, into: &attended)
        } else {
            attendFloats(layer, q, tokens: t, start: start, into: &attended)
        }
        notify(.attentionOutputInput, layer, attended, rows: t, width: qDim)
        let outputSite = ActivationSite.attentionOutputInput.rawValue
        let projected = project(
            &attended, rows: t, w.o, out: h, in: qDim, quantizer: weights.quantization.activations[outputSite],
            site: outputSite)
        Self.addInPlace(&x, projected)
    }

    private func feedForwardBlock(_ layer: Int, _ x: inout [Float], tokens t: Int) {
        let w = weights.layers[layer]
        let (h, f) = (config.hiddenSize, config.ffnSize)
        var normed = Self.rmsNorm(x, w.ffnNorm, rows: t, epsilon: config.normEpsilon, pool: pool)
        notify(.mlpInput, layer, normed, rows: t, width: h)
        let site = ActivationSite.mlpInput.rawValue
        var (gate, up, _) = Self.splitColumns(
            project(
                &normed, rows: t, w.gateUp, out: 2 * f, in: h, quantizer: weights.quantization.activations[site],
                site: site),
            rows: t, widths: (f, f, 0))
        gate.withUnsafeMutableBufferPointer { g in
            up.withUnsafeBufferPointer { u in
                let (gp, up) = (UnsafeSendable(g.baseAddress!), UnsafeSendable(u.baseAddress!))
                Self.parallelFor(t, pool: pool, minimumWork: 64) { row in
                    lk_silu_mul(gp.value + row * f, up.value + row * f, Int32(f))
                }
            }
        }
        if let downHadamard {
            gate.withUnsafeMutableBufferPointer { g in
                downHadamard.baseEntries.withUnsafeBufferPointer { entries in
                    let (base, had) = (UnsafeSendable(g.baseAddress!), UnsafeSendable(entries.baseAddress!))
                    let scale = 1 / Float(f).squareRoot()
                    let (order, power) = (Int32(downHadamard.base), Int32(downHadamard.powerOfTwo))
                    Self.parallelFor(t, pool: pool, minimumWork: 16) { row in
                        lk_hadamard(base.value + row * f, order, power, had.value, scale)
                    }
                }
            }
        }
        notify(.downInput, layer, gate, rows: t, width: f)
        let downSite = ActivationSite.downInput.rawValue
        let down = project(
            &gate, rows: t, w.down, out: h, in: f, quantizer: weights.quantization.activations[downSite], site: downSite
        )
        Self.addInPlace(&x, down)
    }

    /// Appends `rows` to a layer's cache: quantized into `cache` or as floats into `floats`.
    private func store(
        _ rows: [Float], into cache: QuantizedKVCache?, or floats: inout [Float], layer: Int, at start: Int
    ) {
        let width = config.kvHeadCount * config.headDim
        guard let cache else {
            floats.withUnsafeMutableBufferPointer { target in
                rows.withUnsafeBufferPointer { source in
                    (target.baseAddress! + start * width).update(from: source.baseAddress!, count: source.count)
                }
            }
            return
        }
        rows.withUnsafeBufferPointer {
            cache.store(layer: layer, position: start, rows: $0.count / width, values: $0.baseAddress!)
        }
    }

    /// Bytes the KV cache holds per token (all layers): its quantized records, or F32 values.
    public var kvCacheBytesPerToken: Int {
        let width = config.kvHeadCount * config.headDim
        return config.layerCount * ((keyCache?.bytesPerToken ?? 4 * width) + (valueCache?.bytesPerToken ?? 4 * width))
    }

    private func notify(_ site: ActivationSite, _ layer: Int, _ values: [Float], rows: Int, width: Int) {
        guard let observer else { return }
        values.withUnsafeBufferPointer {
            observer.observe(site, layer: firstLayer + layer, rows: rows, width: width, values: $0)
        }
    }

    // MARK: - Simulated quantization and online transforms

    /// Fake-quantizes each of the `rows` rows of `x` as `quantizer` says (nothing when nil).
    func quantize(_ x: inout [Float], _ quantizer: ActivationQuantizer?, rows: Int) {
        guard let quantizer, rows > 0 else { return }
        let width = x.count / rows
        let parts = quantizer.parts(width: width)
        x.withUnsafeMutableBufferPointer { p in
            let base = UnsafeSendable(p.baseAddress!)
            pool.forEachRange(rows, parallel: rows >= 64) { range in
                // The SIMD quantizer gives the float one's bits; a part it declines (NaN, no step,
                // more than 8 bits) goes through the float one.
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: width) { codes in
                    for row in range {
                        let values = base.value + row * width
                        for part in parts
                        where lk_fake_quantize(
                            values + part.start, Int32(part.count), Int32(part.bits), quantizer.includeZero ? 1 : 0,
                            quantizer.clip, codes.baseAddress!) == 0
                        {
                            UniformQuantizer.asymmetric(
                                values + part.start, count: part.count, bits: part.bits,
                                includeZero: quantizer.includeZero, clip: quantizer.clip)
                        }
                    }
                }
            }
        }
    }

    /// `x ← x · U` for each head vector of `x` (`tokens × heads` of them), after quantizing each vector to
    /// the scheme's q/k bits when it has them (the rotation's integer input).
    private func rotateHeads(_ x: inout [Float], tokens: Int, heads: Int, by rotation: [Float]) {
        let (hd, rows) = (config.headDim, tokens * heads)
        if tokens <= Self.packedGEMVLimit, hd <= 512 {
            // Decoding: one small kernel instead of a quantizer pass and a BLAS call for a dozen
            // vectors, serial time on the main thread. Prefill keeps the GEMM.
            let bits = Int32(weights.quantization.queryKeyBits ?? 0)
            x.withUnsafeMutableBufferPointer { xp in
                rotation.withUnsafeBufferPointer {
                    lk_rotate_heads(xp.baseAddress!, Int32(rows), Int32(hd), $0.baseAddress!, bits)
                }
            }
            return
        }
        if let bits = weights.quantization.queryKeyBits {
            quantize(&x, ActivationQuantizer(bits: bits, includeZero: true), rows: rows)
        }
        var rotated = Self.overwritten(x.count)
        x.withUnsafeBufferPointer { xp in
            rotation.withUnsafeBufferPointer { up in
                rotated.withUnsafeMutableBufferPointer { out in
                    BLAS.gemm(
                        m: rows, n: hd, k: hd, a: xp.baseAddress!, lda: hd, b: up.baseAddress!, ldb: hd,
                        c: out.baseAddress!, ldc: hd)
                }
            }
        }
        x = rotated
    }
}
