import CKernels
import LatheCore

/// A KV cache kept in its quantized form: per token, the codes of each part the quantizer cuts the
/// row into (4-bit codes two per byte, element 2k in the low nibble; wider codes one per byte),
/// then each part's F32 scale and its zero point as an Int16 (the fake quantizer's zero point is an
/// integer; one outside Int16, possible only when the range excludes 0, sends the part to the float
/// side store). Dequantizing gives exactly the values the simulated path's fake quantization produces.
final class QuantizedKVCache {
    let quantizer: ActivationQuantizer
    let width: Int
    let parts: [ActivationQuantizer.Part]
    /// Byte offset of each part's codes inside a token's record.
    private let codeOffsets: [Int]
    private let paramsOffset: Int
    /// A part's F32 scale and Int16 zero point.
    static let parameterBytes = 6
    let recordBytes: Int
    private var layers: [UnsafeMutableRawPointer]
    private let codes: QuantizedActivation
    private let maxContext: Int

    /// Nil when the quantizer's codes are wider than 8 bits (kept as floats instead).
    init?(_ quantizer: ActivationQuantizer, width: Int, layers layerCount: Int, maxContext: Int) {
        guard quantizer.bits <= 8, quantizer.highBits <= 8 else { return nil }
        self.quantizer = quantizer
        self.width = width
        parts = quantizer.parts(width: width)
        var offset = 0
        var offsets: [Int] = []
        for part in parts {
            offsets.append(offset)
            offset += part.bits <= 4 ? (part.count + 1) / 2 : part.count
        }
        codeOffsets = offsets
        paramsOffset = offset
        recordBytes = offset + Self.parameterBytes * parts.count
        layers = (0..<layerCount).map { [recordBytes] _ in
            UnsafeMutableRawPointer.allocate(byteCount: max(1, maxContext * recordBytes), alignment: 64)
        }
        codes = QuantizedActivation(quantizer, width: width)
        self.maxContext = maxContext
    }

    deinit { for layer in layers { layer.deallocate() } }

    /// Parts kept as floats (rare: see `store`), by (layer, position, part).
    private var raw: [Int: [Float]] = [:]
    /// Layers holding any such part: their attention runs on dequantized floats.
    private(set) var layersWithRawParts: Set<Int> = []

    /// The first token's record of `layer` (records follow each other, `recordBytes` apart).
    func records(layer: Int) -> UnsafeRawPointer { UnsafeRawPointer(layers[layer]) }

    /// Where the `headDim` values of head `head` lie in a record, part by part, for
    /// `lk_attend_quantized`.
    func pieces(head: Int, headDim: Int) -> [lk_kv_piece] {
        let (low, high) = (head * headDim, (head + 1) * headDim)
        return parts.enumerated().compactMap { index, part in
            let first = max(low, part.start)
            let end = min(high, part.start + part.count)
            guard first < end else { return nil }
            return lk_kv_piece(
                codes: Int32(codeOffsets[index]), first: Int32(first - part.start), count: Int32(end - first),
                bits: Int32(part.bits), params: Int32(paramsOffset + Self.parameterBytes * index),
                target: Int32(first - low))
        }
    }

    private func rawKey(_ layer: Int, _ position: Int, _ part: Int) -> Int {
        (layer * maxContext + position) * parts.count + part
    }

    /// Bytes the cache holds per token and layer.
    var bytesPerToken: Int { recordBytes }

    /// Quantizes and stores `rows` rows of `values` at `position...`.
    func store(layer: Int, position: Int, rows: Int, values: UnsafePointer<Float>) {
        for row in 0..<rows {
            let record = layers[layer] + (position + row) * recordBytes
            let x = values + row * width
            for (index, part) in parts.enumerated() {
                var scale: Float = 0
                var zero: Int16 = 0
                let target = record + codeOffsets[index]
                if codes.load(x, part: index), let integer = Int16(exactly: codes.zeros[index]) {
                    (scale, zero) = (codes.scales[index], integer)
                } else {
                    // A part without codes that fit: a constant part is stored exactly as code 0 with
                    // zero point −1 and its value as the scale (scale · (0 − (−1))); any other (a NaN,
                    // an infinity, a range too small for a step, a zero point beyond Int16) keeps its
                    // fake-quantized floats aside, marked by a NaN scale.
                    let constant =
                        !x[part.start].isNaN
                        && (0..<part.count).allSatisfy { x[part.start + $0].bitPattern == x[part.start].bitPattern }
                    if constant {
                        (scale, zero) = (x[part.start], -1)
                    } else {
                        (scale, zero) = (.nan, 0)
                        layersWithRawParts.insert(layer)
                        var values = Array(UnsafeBufferPointer(start: x + part.start, count: part.count))
                        values.withUnsafeMutableBufferPointer {
                            UniformQuantizer.asymmetric(
                                $0.baseAddress!, count: part.count, bits: part.bits,
                                includeZero: quantizer.includeZero, clip: quantizer.clip)
                        }
                        raw[rawKey(layer, position + row, index)] = values
                    }
                    for i in 0..<part.count { codes.codes[part.start + i] = 0 }
                }
                if part.bits <= 4 {
                    for k in 0..<((part.count + 1) / 2) {
                        let low = codes.codes[part.start + 2 * k]
                        let high = 2 * k + 1 < part.count ? codes.codes[part.start + 2 * k + 1] : 0
                        target.storeBytes(of: low | (high << 4), toByteOffset: k, as: UInt8.self)
                    }
                } else {
                    target.copyMemory(from: codes.codes + part.start, byteCount: part.count)
                }
                let params = record + paramsOffset + Self.parameterBytes * index
                params.storeBytes(of: scale, as: Float.self)
                params.storeBytes(of: zero, toByteOffset: 4, as: Int16.self)
            }
        }
    }

    /// Rows `0..<count` of `layer`, dequantized into `out` (`count × width`).
    func dequantize(layer: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        for row in 0..<count {
            let record = UnsafeRawPointer(layers[layer] + row * recordBytes)
            for (index, part) in parts.enumerated() {
                let params = record + paramsOffset + Self.parameterBytes * index
                let scale = params.loadUnaligned(as: Float.self)
                let zero = Float(params.loadUnaligned(fromByteOffset: 4, as: Int16.self))
                let source = (record + codeOffsets[index]).assumingMemoryBound(to: UInt8.self)
                let target = out + row * width + part.start
                if scale.isNaN, let values = raw[rawKey(layer, row, index)] {
                    target.update(from: values, count: part.count)
                } else if part.bits <= 4 {
                    lk_dequant_u4_seq(source, scale, zero, target, Int32(part.count))
                } else {
                    lk_dequant_u8_seq(source, scale, zero, target, Int32(part.count))
                }
            }
        }
    }
}
