import Foundation
import LatheCore
import LatheTestSupport
import Testing

@testable import PassEncoding

@Suite("Packed integer encoding")
struct PackedIntegerEncodingTests {
    @Test(
        "values built as Float(q) · scale, or Float(u − z) · scale with zero points, pack exactly and decode to the same floats, F32 and F16 scales",
        arguments: [false, true], [false, true])
    func exactRoundTrip(zeroPoints: Bool, halfScales: Bool) throws {
        var generator = SplitMix64(state: (zeroPoints ? 4 : 3) + (halfScales ? 10 : 0))
        for rowLength in [1, 7, 63, 64, 65, 130] {
            var encodings = try [4, 8].map { bits in
                try PackedIntegerEncoding(
                    segments: [.init(start: 0, count: rowLength, bits: bits, slot: 0)], slotCount: 1,
                    zeroPoints: zeroPoints, halfScales: halfScales)
            }
            for _ in 0..<4 {
                encodings.append(
                    try randomEncoding(
                        rowLength: rowLength, zeroPoints: zeroPoints, halfScales: halfScales, using: &generator))
            }
            for encoding in encodings {
                let rows = Int.random(in: 1...4, using: &generator)
                let values = onGrid(encoding, rows: rows, using: &generator)
                let payload = try #require(
                    values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: rows) },
                    "\(encoding.segments)")
                #expect(payload.count == encoding.byteCount(rows: rows))
                #expect(decode(payload, encoding, rows: rows) == values, "\(encoding.segments)")
            }
        }
    }

    @Test("a 4-bit block pairs column j with column j + ⌈m/2⌉, offset by 8")
    func nibbleOrder() throws {
        // 67 columns: a full block of 64 (byte j = columns j, j + 32) and a block of 3 (h = 2).
        let encoding = try PackedIntegerEncoding(segments: [.init(start: 0, count: 67, bits: 4, slot: 0)], slotCount: 1)
        let codes = (0..<67).map { $0 % 16 - 8 }
        let values = codes.map { Float($0) }
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 1) })
        #expect(payload.count == 4 + 32 + 2)
        #expect(Array(payload[0..<4]) == [0x00, 0x00, 0x80, 0x3F], "scale 1.0")
        for j in 0..<32 {
            #expect(payload[4 + j] == UInt8(codes[j] + 8) | UInt8(codes[j + 32] + 8) << 4, "byte \(j)")
        }
        #expect(payload[36] == UInt8(codes[64] + 8) | UInt8(codes[66] + 8) << 4)
        #expect(payload[37] == UInt8(codes[65] + 8), "the unused high nibble is 0")
    }

    @Test("a zero point is an int8 after the scales; codes are k + z, stored as in §4.3")
    func zeroPointBytes() throws {
        let encoding = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 3, bits: 4, slot: 0)], slotCount: 1, zeroPoints: true)
        #expect(encoding.rowStride == 4 + 1 + 2)
        #expect(encoding.description == "PACKED4x1z")
        // 0.25 · (1, 4, 15): the scale 0.25 takes k = 1…15, so z = −8 and codes k − 8 = −7, −4, 7.
        let values: [Float] = [0.25, 1.0, 3.75]
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 1) })
        #expect(payload == [0x00, 0x00, 0x80, 0x3E, 0xF8, 0xF1, 0x04])
        #expect(decode(payload, encoding, rows: 1) == values)
        // The same values have no symmetric 4-bit grid (15 steps from the smallest to the largest).
        let symmetric = try PackedIntegerEncoding(segments: encoding.segments, slotCount: 1)
        #expect(values.withUnsafeBufferPointer { symmetric.encodeExactly($0, rows: 1) } == nil)
        // 1 and 17 need k and 17k: a window of 16k steps, too wide for 4 bits, fine for 8.
        let wide: [Float] = [1, 17]
        let four = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 2, bits: 4, slot: 0)], slotCount: 1, zeroPoints: true)
        let eight = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 2, bits: 8, slot: 0)], slotCount: 1, zeroPoints: true)
        #expect(wide.withUnsafeBufferPointer { four.encodeExactly($0, rows: 1) } == nil)
        #expect(wide.withUnsafeBufferPointer { eight.encodeExactly($0, rows: 1) } != nil)
    }

    @Test("F16 scales take two bytes; values whose scale F16 cannot hold are refused by that layout")
    func halfScaleBytes() throws {
        let encoding = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 3, bits: 4, slot: 0)], slotCount: 1, zeroPoints: true, halfScales: true)
        #expect(encoding.rowStride == 2 + 1 + 2)
        #expect(encoding.description == "PACKED4x1zh")
        let values: [Float] = [0.25, 1.0, 3.75]
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 1) })
        #expect(payload == [0x00, 0x34, 0xF8, 0xF1, 0x04], "F16 0.25 is 0x3400")
        #expect(decode(payload, encoding, rows: 1) == values)
        // 0.1 has 24 significant bits; a 4-bit code times an F16 scale has at most 15.
        let tenth: [Float] = [0.1, 0]
        let half = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 2, bits: 4, slot: 0)], slotCount: 1, halfScales: true)
        let single = try PackedIntegerEncoding(segments: half.segments, slotCount: 1)
        #expect(tenth.withUnsafeBufferPointer { half.encodeExactly($0, rows: 1) } == nil)
        #expect(tenth.withUnsafeBufferPointer { single.encodeExactly($0, rows: 1) } != nil)
    }

    @Test("values off the grid, non-finite values and out-of-range codes return nil")
    func offGrid() throws {
        let four = try PackedIntegerEncoding(segments: [.init(start: 0, count: 2, bits: 4, slot: 0)], slotCount: 1)
        let eight = try PackedIntegerEncoding(segments: [.init(start: 0, count: 2, bits: 8, slot: 0)], slotCount: 1)
        // No ratio of two codes within ±128 comes within float precision of 1/√2.
        let ratio: Float = 0.707_106_78
        for encoding in [four, eight] {
            for pair in [[1.5, 1.5 * ratio], [1, .nan], [.infinity, 1]] as [[Float]] {
                #expect(pair.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 1) } == nil, "\(pair)")
            }
        }
        // 100 and 1 need codes 100 and 1: in range at 8 bit, not at 4.
        let wide: [Float] = [100, 1]
        #expect(wide.withUnsafeBufferPointer { four.encodeExactly($0, rows: 1) } == nil)
        #expect(wide.withUnsafeBufferPointer { eight.encodeExactly($0, rows: 1) } != nil)

        // One row slot off its grid spoils the whole matrix.
        var generator = SplitMix64(state: 5)
        for rowLength in [7, 63, 64, 65, 130] {
            let encoding = try randomEncoding(rowLength: rowLength, using: &generator)
            guard let segment = encoding.segments.first(where: { $0.count >= 2 }) else { continue }
            let rows = 3
            var values = onGrid(encoding, rows: rows, using: &generator)
            let first = Int.random(in: 0..<rows, using: &generator) * rowLength + segment.start
            values[first] = 1.5
            values[first + 1] = 1.5 * ratio
            #expect(
                values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: rows) } == nil,
                "\(encoding.segments)")
        }
    }
}

@Suite("pack-weights layouts")
struct PackWeightsLayoutTests {
    let record = WeightQuantizationRecord(
        method: "gptq", bits: 4, highBits: 8, hiddenHighColumns: 72, headHighColumns: 8, groupSize: nil,
        tensors: ["self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj"])

    @Test("o_proj: 56 low then 8 high columns per head, 18 segments alternating 4/8 bit in slots 0/1")
    func outputProjection() throws {
        let layout = try PackWeightsPass.layout(kind: "self_attn.o_proj", columns: 576, record: record, headDim: 64)
        let expected = (0..<9).flatMap { head in
            [
                PackedIntegerEncoding.Segment(start: 64 * head, count: 56, bits: 4, slot: 0),
                PackedIntegerEncoding.Segment(start: 64 * head + 56, count: 8, bits: 8, slot: 1),
            ]
        }
        #expect(layout.segments.count == 18)
        #expect(layout.segments == expected)
        #expect(layout.slotCount == 2)
        #expect(layout.rowStride == 332)
    }

    @Test("down_proj: one 4-bit segment over all 1536 columns, one slot")
    func downProjection() throws {
        let layout = try PackWeightsPass.layout(kind: "mlp.down_proj", columns: 1536, record: record, headDim: 64)
        #expect(layout.segments == [PackedIntegerEncoding.Segment(start: 0, count: 1536, bits: 4, slot: 0)])
        #expect(layout.slotCount == 1)
        #expect(layout.rowStride == 772)
    }

    @Test("readers of the hidden state: [0, 504) at 4 bit in slot 0, [504, 576) at 8 bit in slot 1")
    func hiddenReaders() throws {
        let layout = try PackWeightsPass.layout(kind: "self_attn.q_proj", columns: 576, record: record, headDim: 64)
        #expect(
            layout.segments == [
                PackedIntegerEncoding.Segment(start: 0, count: 504, bits: 4, slot: 0),
                PackedIntegerEncoding.Segment(start: 504, count: 72, bits: 8, slot: 1),
            ])
        #expect(layout.rowStride == 332)
    }

    @Test("weights with zero points get an int8 zero point per slot after the scales; F16 scales take two bytes")
    func asymmetric() throws {
        var asymmetric = record
        asymmetric.asymmetric = true
        let layout = try PackWeightsPass.layout(kind: "self_attn.q_proj", columns: 576, record: asymmetric, headDim: 64)
        #expect(layout.zeroPoints && !layout.halfScales)
        #expect(layout.rowStride == 332 + 2)
        asymmetric.halfScales = true
        let half = try PackWeightsPass.layout(kind: "self_attn.q_proj", columns: 576, record: asymmetric, headDim: 64)
        #expect(half.zeroPoints && half.halfScales)
        #expect(half.rowStride == 332 + 2 - 4)
    }

    @Test("groups cut in act order (scattered columns) are refused, naming the record")
    func actOrderGroupsRefused() {
        var scattered = record
        scattered.groupSize = 32
        scattered.actOrderGroups = true
        #expect {
            try PackWeightsPass.layout(kind: "self_attn.q_proj", columns: 576, record: scattered, headDim: 64)
        } throws: { error in
            "\(error)".contains("act order") && "\(error)".contains("weights")
        }
    }

    @Test("with a group size each group of a part gets its own slot")
    func groups() throws {
        var grouped = record
        grouped.groupSize = 128
        let layout = try PackWeightsPass.layout(kind: "self_attn.q_proj", columns: 576, record: grouped, headDim: 64)
        #expect(
            layout.segments == [
                PackedIntegerEncoding.Segment(start: 0, count: 128, bits: 4, slot: 0),
                PackedIntegerEncoding.Segment(start: 128, count: 128, bits: 4, slot: 1),
                PackedIntegerEncoding.Segment(start: 256, count: 128, bits: 4, slot: 2),
                PackedIntegerEncoding.Segment(start: 384, count: 120, bits: 4, slot: 3),
                PackedIntegerEncoding.Segment(start: 504, count: 72, bits: 8, slot: 4),
            ])
        #expect(layout.slotCount == 5)
    }
}
