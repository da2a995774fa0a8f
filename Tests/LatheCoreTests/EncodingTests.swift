import LatheCore
import LatheTestSupport
import Testing

/// Bytes from a hex string.
func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

func decodeBlock(_ type: GGMLBlockType, _ bytes: [UInt8]) throws -> [Float] {
    var output = [Float](repeating: .nan, count: type.blockSize)
    try bytes.withUnsafeBytes { raw in
        try output.withUnsafeMutableBufferPointer {
            try TensorCodec.decode(.quantized(.ggml(type)), from: raw, into: $0)
        }
    }
    return output
}

func encodeBlock(_ type: GGMLBlockType, _ values: [Float]) throws -> [UInt8] {
    try values.withUnsafeBufferPointer { try TensorCodec.encode($0, as: .quantized(.ggml(type))) }
}

/// formats.md §3.5: the pattern b[i] = (37·i + 11) mod 256 with fp16 fields overwritten.
func syntheticBlock(_ type: GGMLBlockType) -> [UInt8] {
    var bytes = (0..<type.bytesPerBlock).map { UInt8((37 * $0 + 11) % 256) }
    func put(_ value: Float, at offset: Int) {
        let bits = HalfPrecision.f16Bits(value)
        bytes[offset] = UInt8(bits & 0xFF)
        bytes[offset + 1] = UInt8(bits >> 8)
    }
    switch type {
    case .q4_0, .q5_0, .q8_0: put(0.5, at: 0)
    case .q4_1, .q5_1:
        put(0.5, at: 0)
        put(-1.0, at: 2)
    case .q2_K:
        put(0.5, at: 80)
        put(0.25, at: 82)
    case .q3_K: put(0.5, at: 108)
    case .q4_K, .q5_K:
        put(0.5, at: 0)
        put(0.25, at: 2)
    case .q6_K: put(0.5, at: 208)
    default: break
    }
    return bytes
}

@Suite("ggml block encodings")
struct EncodingTests {
    /// formats.md §3.5 (gguf-py and an independent decoder agree on these).
    static let synthetic: [(GGMLBlockType, [Float], Float, Float)] = [
        (.q4_0, [-1.5, 1.0, 3.5, -2.0, 0.5, 3.0, -2.5, 0.0], -10.5, 0.0),
        (.q4_1, [6.5, 1.0, 3.5, 6.0, 0.5, 3.0, 5.5, 0.0], 90.5, 5.0),
        (.q5_0, [4.5, -1.0, 1.5, -4.0, 6.5, -7.0, 3.5, -2.0], 7.5, 0.5),
        (.q5_1, [8.5, 11.0, 13.5, 8.0, 10.5, 5.0, -0.5, 10.0], 220.5, 1.5),
        (.q8_0, [42.5, 61.0, -48.5, -30.0, -11.5, 7.0, 25.5, 44.0], -88.0, -24.0),
        (.q2_K, [16.5, 0.0, 5.5, 11.0, 16.5, 0.0, 5.5, 11.0], 1029.5, 2.25),
        (.q3_K, [40.5, -54.0, 13.5, -27.0, 40.5, -54.0, 13.5, -27.0], 479.0, 21.0),
        (.q4_K, [157.75, -12.75, 64.75, 142.25, 219.75, 49.25, 126.75, 204.25], 27220.0, 24.25),
        (.q5_K, [405.75, -12.75, 312.75, 142.25, 467.75, 49.25, 374.75, 204.25], 58108.0, 54.25),
        (.q6_K, [-715.5, 848.0, 291.5, -265.0, -821.5, 742.0, 185.5, -371.0], 2306.0, -30.0),
    ]

    @Test("dequantizes the synthetic reference blocks exactly", arguments: synthetic)
    func syntheticVectors(type: GGMLBlockType, head: [Float], sum: Float, last: Float) throws {
        let y = try decodeBlock(type, syntheticBlock(type))
        #expect(Array(y.prefix(8)) == head)
        #expect(y.reduce(0.0) { $0 + Double($1) } == Double(sum))
        #expect(y.last == last)
    }

    /// formats.md §3.3: x_i = (i − 13)/7 quantized by the reference quantizers.
    static let legacy: [(GGMLBlockType, String, [Float])] = [
        (
            .q4_0, "25b57e6d6d5c5c4c4b4b3a3a292918180807",
            [-1.92919921875, -1.607666015625, -1.607666015625, -1.2861328125]
        ),
        (
            .q4_1, "b9346ebf80809191a2a2b3b3c4c4d5d5e6e6f7f7",
            [-1.857421875, -1.857421875, -1.562255859375, -1.562255859375]
        ),
        (
            .q5_0, "25b1ff3f0000dccbcab9a89786756454434231201f0e",
            [-1.92919921875, -1.7684326171875, -1.607666015625, -1.4468994140625]
        ),
        (
            .q5_1, "92306ebf0000ffff00112233445566778899aabbccddeeff",
            [-1.857421875, -1.714599609375, -1.57177734375, -1.428955078125]
        ),
        (
            .q8_0, "2f25a4abb2b9c0c8cfd6dde4ebf2f900070e151c232a313840474e555c636a71787f",
            [-1.86285400390625, -1.7211151123046875, -1.579376220703125, -1.4376373291015625]
        ),
    ]

    @Test("the reference quantizers reproduce ggml's bytes, and those bytes decode as ggml does", arguments: legacy)
    func legacyVectors(type: GGMLBlockType, hex: String, head: [Float]) throws {
        let x = (0..<32).map { Float($0 - 13) / 7 }
        #expect(try encodeBlock(type, x) == hexBytes(hex))
        #expect(Array(try decodeBlock(type, hexBytes(hex)).prefix(4)) == head)
    }

    @Test("an all-zero block quantizes to zeros and back")
    func zeros() throws {
        for type in [GGMLBlockType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0] {
            let zero = [Float](repeating: 0, count: 32)
            #expect(try decodeBlock(type, encodeBlock(type, zero)) == zero, "\(type.name)")
        }
    }

    @Test("bf16 rounds to nearest even and keeps NaN quiet; f16 round-trips")
    func halfPrecision() {
        #expect(HalfPrecision.bf16Bits(1.0) == 0x3F80)
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even one (1.0).
        #expect(HalfPrecision.bf16Bits(1 + 0x1p-8) == 0x3F80)
        #expect(HalfPrecision.bf16Bits(1 + 0x1p-8 + 0x1p-12) == 0x3F81)
        #expect(HalfPrecision.float(fromBF16: HalfPrecision.bf16Bits(.nan)).isNaN)
        #expect(HalfPrecision.f16Bits(0.1268310546875) == 0x300F)
        #expect(HalfPrecision.float(fromF16: 0xB9D8) == -0.73046875)
    }

    @Test("F16 and BF16 encoding eight at a time equals the scalar conversion and Swift's Float16, bit for bit")
    func vectorHalfPrecision() throws {
        let values = FloatPatterns.halfPrecisionEdges
        let f16 = try values.withUnsafeBufferPointer { try TensorCodec.encode($0, as: .f16) }
        let bf16 = try values.withUnsafeBufferPointer { try TensorCodec.encode($0, as: .bf16) }
        var mismatches = 0
        for (i, value) in values.enumerated() {
            let half = UInt16(f16[2 * i]) | UInt16(f16[2 * i + 1]) << 8
            let brain = UInt16(bf16[2 * i]) | UInt16(bf16[2 * i + 1]) << 8
            let expected = value.isNaN ? (value.sign == .minus ? 0xFE00 : 0x7E00) : Float16(value).bitPattern
            if half != HalfPrecision.f16Bits(value) || half != expected || brain != HalfPrecision.bf16Bits(value) {
                mismatches += 1
            }
        }
        #expect(mismatches == 0, "of \(values.count) values")
    }

    @Test("scalar types decode little-endian values")
    func scalars() throws {
        let bytes: [UInt8] = [0xFF, 0xFF, 0x02, 0x00]
        var out = [Float](repeating: 0, count: 2)
        try bytes.withUnsafeBytes { raw in
            try out.withUnsafeMutableBufferPointer { try TensorCodec.decode(.i16, from: raw, into: $0) }
        }
        #expect(out == [-1, 2])
    }
}
