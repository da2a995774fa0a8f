import FormatPacked
import Foundation
import FuzzSupport
import LatheCore

/// Seeds: the seed model plus a packed int4/int8 matrix, stored plain and zstd-compressed (lpack
/// 1.0), and with a second matrix that has weight zero points and F16 scales (lpack 2.0).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt {
    Seeds.initialize(argc, argv, harness: "fuzz-lpack") {
        // Four rows of 128 columns: 64 in 4 bits (scale slot 0), 64 in 8 bits (slot 1).
        let encoding = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 64, bits: 4, slot: 0), .init(start: 64, count: 64, bits: 8, slot: 1)],
            slotCount: 2)
        var payload: [UInt8] = []
        for row in 0..<4 {
            for scale in [Float(0.01), Float(0.002)] { withUnsafeBytes(of: scale * Float(row + 1)) { payload += $0 } }
            payload += (0..<encoding.rowCodeBytes).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ row) }
        }
        let packed = Tensor(
            info: TensorInfo(name: "extra.packed", dtype: .quantized(.packed(encoding)), shape: Shape([4, 128])),
            storage: TensorStorage(bytes: payload))
        let graph = try SeedModel.graph(extras: [packed])
        var seeds = try ["none", "zstd"].map { compression in
            try Seeds.written("\(compression).lpack") {
                _ = try PackedWriter().write(
                    graph, to: $0, options: WriteOptions(parameters: ["compression": compression]))
            }
        }
        // The same codes with F16 scales (0.01 and 0.002 as 0x211F and 0x1819) and an int8 zero point per slot.
        let zeroPoints = try PackedIntegerEncoding(
            segments: encoding.segments, slotCount: encoding.slotCount, zeroPoints: true, halfScales: true)
        var zeroPayload: [UInt8] = []
        for row in 0..<4 {
            let start = row * encoding.rowStride
            zeroPayload += [0x1F, 0x21, 0x19, 0x18, UInt8(bitPattern: -3), 5]
            zeroPayload += payload[(start + 8)..<(start + encoding.rowStride)]
        }
        let withZeros = Tensor(
            info: TensorInfo(name: "extra.zeros", dtype: .quantized(.packed(zeroPoints)), shape: Shape([4, 128])),
            storage: TensorStorage(bytes: zeroPayload))
        let version2 = try SeedModel.graph(extras: [packed, withZeros])
        seeds.append(
            try Seeds.written("zeros.lpack") { _ = try PackedWriter().write(version2, to: $0, options: WriteOptions()) }
        )
        return seeds
    }
}

/// One lpack file per input, read and decoded: decoding a member verifies its checksum first (as
/// `lathe check` does for all of them), then its scales, then inflates it when compressed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPacked(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.withFile(data, size, name: "input.lpack") { url in
        FuzzFile.exercise { try PackedReader().read(url, options: ReadOptions()) }
    }
    return 0
}
