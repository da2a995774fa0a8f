import Foundation

extension GGMLBlockType {
    /// Where each block keeps its floating-point scales (byte offset, and whether an F32 rather than
    /// an F16): formats.md §3. Integer sub-block scales cannot be NaN and are not listed.
    var scaleFields: [(offset: Int, isF32: Bool)] {
        switch self {
        case .q4_0, .q5_0, .q8_0: [(0, false)]
        case .q4_1, .q5_1, .q8_1, .q4_K, .q5_K: [(0, false), (2, false)]
        case .q2_K: [(80, false), (82, false)]
        case .q3_K: [(108, false)]
        case .q6_K: [(208, false)]
        case .q8_K: [(0, true)]
        }
    }
}

extension QuantizedEncoding {
    /// The first block (ggml) or row (packed) with a NaN or infinite scale, if any. Readers check this
    /// before a tensor's values are used: one damaged scale would otherwise silently turn a whole
    /// block into NaN, or into infinities that spread through every later layer.
    public func firstNonFiniteScale(_ bytes: UnsafeRawBufferPointer) -> Int? {
        switch self {
        case .ggml(let type):
            // On the bit patterns: a float is NaN or infinite exactly when its exponent bits are all
            // ones (an F16 table lookup per scale was a noticeable part of converting a model).
            let fields = type.scaleFields
            for block in 0..<(bytes.count / type.bytesPerBlock) {
                for field in fields {
                    let offset = block * type.bytesPerBlock + field.offset
                    let (bits, exponent): (UInt32, UInt32) =
                        field.isF32
                        ? (
                            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
                            0x7F80_0000
                        )
                        : (
                            UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))),
                            0x7C00
                        )
                    if bits & exponent == exponent { return block }
                }
            }
        case .packed(let encoding):
            for row in 0..<(bytes.count / max(encoding.rowStride, 1)) {
                for slot in 0..<encoding.slotCount {
                    if !encoding.scale(bytes.baseAddress! + row * encoding.rowStride, slot: slot).isFinite {
                        return row
                    }
                }
            }
        }
        return nil
    }
}

/// The scale check readers run on a quantized tensor's bytes (inside a ``CheckedOnce``, so it
/// costs one pass over the scales the first time the bytes are used).
public enum ScaleCheck {
    /// Throws, naming the file, tensor and block (or row), when a scale is NaN or infinite.
    public static func check(_ storage: TensorStorage, _ info: TensorInfo, path: String) throws {
        guard case .quantized(let encoding) = info.dtype,
            let index = storage.withUnsafeBytes({ encoding.firstNonFiniteScale($0) })
        else { return }
        let unit = if case .packed = encoding { "row" } else { "block" }
        throw LatheError.fileAccess(
            path: path,
            reason: "tensor '\(info.name)': \(unit) \(index) has a NaN or infinite scale; the file is damaged")
    }
}

/// A check that runs until it first passes, and never again (thread-safe): readers verify a
/// tensor's bytes (checksum, scales) the first time they are used, and keep their lazy, zero-copy
/// payloads. `@unchecked Sendable`: `passed` is only touched under the lock.
public final class CheckedOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var passed = false

    public init() {}

    public func run(_ check: () throws -> Void) throws {
        try lock.withLock {
            guard !passed else { return }
            try check()
            passed = true
        }
    }
}
