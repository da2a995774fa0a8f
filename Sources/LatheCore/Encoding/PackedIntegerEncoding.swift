/// Lathe's packed integer matrix encoding (`formats/packed/SPEC.md` §4): each row of a matrix is cut
/// into contiguous column segments, each with its own bit width (4 or 8) and a scale slot; every row
/// has one scale per slot (F32, or F16 with `halfScales`), shared by the segments that name it, and
/// with `zeroPoints` one int8 zero point z per slot. Values are `Float(q − z) · scale` with integer
/// codes q (z = 0 without zero points), exactly the grid the weight quantization pass simulates.
///
/// Payload: rows one after another, `rowStride` bytes each: the row's `slotCount` scales
/// (little-endian), its `slotCount` zero points when it has them, then its segments' codes in
/// order. Whole rows keep every row-wise consumer (a streaming conversion, a GEMV over a row range)
/// simple. An 8-bit segment holds its codes as
/// two's-complement bytes. A 4-bit segment is cut into blocks of 64 columns (the last may be
/// shorter); a block of m columns takes h = ⌈m/2⌉ bytes, byte j holding column j in its low nibble
/// and column j + h in its high nibble, as q + 8. That pairing lets a SIMD kernel unpack 64 columns
/// with one mask and one shift while activations stay in their natural order.
public struct PackedIntegerEncoding: Hashable, Sendable, CustomStringConvertible {
    public struct Segment: Hashable, Sendable, Codable {
        public var start: Int
        public var count: Int
        public var bits: Int
        public var slot: Int

        public init(start: Int, count: Int, bits: Int, slot: Int) {
            self.start = start
            self.count = count
            self.bits = bits
            self.slot = slot
        }

        /// Bytes of one row's codes for this segment.
        public var byteCount: Int { bits == 4 ? (count + 1) / 2 : count }
    }

    /// Columns per nibble block of a 4-bit segment.
    public static let nibbleBlock = 64

    public let segments: [Segment]
    public let slotCount: Int
    /// Whether each row slot carries an int8 zero point after the scales (an asymmetric grid).
    public let zeroPoints: Bool
    /// Whether the scales are stored as IEEE half (F16) instead of F32.
    public let halfScales: Bool
    public let rowLength: Int
    public let rowCodeBytes: Int
    /// Byte offset of each segment inside a row's codes.
    public let segmentOffsets: [Int]

    /// Checks that the segments tile `0..<rowLength` in order with 4- or 8-bit codes and valid slots.
    public init(segments: [Segment], slotCount: Int, zeroPoints: Bool = false, halfScales: Bool = false)
        throws(LatheError)
    {
        var next = 0
        var offsets: [Int] = []
        var bytes = 0
        guard (1...(1 << 20)).contains(slotCount) else {
            throw .invalidValue(field: "packed slots", value: "\(slotCount)", expected: "1 to 2^20")
        }
        for segment in segments {
            // Row lengths beyond 2^31 columns cannot be run by the kernels (32-bit counts) anyway;
            // the bound also keeps every sum below from overflowing.
            guard segment.count > 0, segment.count < 1 << 31, next < 1 << 40 else {
                throw .invalidValue(
                    field: "packed segment at column \(segment.start)", value: "\(segment.count) columns",
                    expected: "1 to 2^31 columns, rows below 2^40 columns")
            }
            guard segment.start == next else {
                throw .invalidValue(
                    field: "packed segment at column \(segment.start)", value: "\(segment.count) columns",
                    expected: "segments that tile the row in order, starting at column \(next)")
            }
            guard segment.bits == 4 || segment.bits == 8 else {
                throw .invalidValue(field: "packed segment bits", value: "\(segment.bits)", expected: "4 or 8")
            }
            guard (0..<slotCount).contains(segment.slot) else {
                throw .invalidValue(
                    field: "packed segment slot", value: "\(segment.slot)", expected: "0..<\(slotCount)")
            }
            offsets.append(bytes)
            bytes += segment.byteCount
            next += segment.count
        }
        guard !segments.isEmpty else {
            throw .invalidValue(field: "packed segments", value: "none", expected: "at least one segment")
        }
        self.segments = segments
        self.slotCount = slotCount
        self.zeroPoints = zeroPoints
        self.halfScales = halfScales
        rowLength = next
        rowCodeBytes = bytes
        segmentOffsets = offsets
    }

    /// Bytes before a row's codes: its scales and zero points.
    public var headerBytes: Int { (scaleBytes + (zeroPoints ? 1 : 0)) * slotCount }

    /// Bytes of one scale.
    public var scaleBytes: Int { halfScales ? 2 : 4 }

    /// Whether the layout needs lpack 2.0 (zero points or F16 scales).
    public var needsVersion2: Bool { zeroPoints || halfScales }

    /// Bytes of one row: its scales and zero points, then its codes.
    public var rowStride: Int { headerBytes + rowCodeBytes }

    public func byteCount(rows: Int) -> Int { rows * rowStride }

    /// The payload size of `rows` rows, or nil when it overflows.
    public func checkedByteCount(rows: Int) -> Int? {
        let (bytes, overflow) = rows.multipliedReportingOverflow(by: rowStride)
        return overflow ? nil : bytes
    }

    /// Storage bits per weight, scales and zero points included.
    public var bitsPerWeight: Double { Double(8 * rowStride) / Double(max(rowLength, 1)) }

    public static func == (a: Self, b: Self) -> Bool {
        a.segments == b.segments && a.slotCount == b.slotCount && a.zeroPoints == b.zeroPoints
            && a.halfScales == b.halfScales
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(segments)
        hasher.combine(slotCount)
        hasher.combine(zeroPoints)
        hasher.combine(halfScales)
    }

    /// `PACKED4/8`, the number of scale slots, `z` for zero points and `h` for F16 scales: enough to
    /// tell layouts apart in a table.
    public var description: String {
        let widths = Set(segments.map(\.bits)).sorted().map(String.init).joined(separator: "/")
        return "PACKED\(widths)x\(slotCount)\(zeroPoints ? "z" : "")\(halfScales ? "h" : "")"
    }

    // MARK: - Decoding

    /// The code of column `i` (0-based inside `segment`) of a row whose codes start at `codes`.
    @inline(__always)
    public static func code(_ codes: UnsafeRawPointer, _ segment: Segment, _ i: Int) -> Int {
        if segment.bits == 8 { return Int(codes.load(fromByteOffset: i, as: Int8.self)) }
        let block = i / nibbleBlock
        let m = min(nibbleBlock, segment.count - block * nibbleBlock)
        let h = (m + 1) / 2
        let j = i - block * nibbleBlock
        let byte = codes.load(fromByteOffset: block * (nibbleBlock / 2) + (j < h ? j : j - h), as: UInt8.self)
        return Int(j < h ? byte & 0x0F : byte >> 4) - 8
    }

    /// The zero point of `slot` in the row starting at `row` (0 without zero points).
    @inline(__always)
    public func zero(_ row: UnsafeRawPointer, slot: Int) -> Int {
        zeroPoints ? Int(row.load(fromByteOffset: scaleBytes * slotCount + slot, as: Int8.self)) : 0
    }

    /// The scale of `slot` in the row starting at `row`.
    @inline(__always)
    public func scale(_ row: UnsafeRawPointer, slot: Int) -> Float {
        guard halfScales else {
            return Float(bitPattern: UInt32(littleEndian: row.loadUnaligned(fromByteOffset: 4 * slot, as: UInt32.self)))
        }
        return HalfPrecision.float(
            fromF16: UInt16(littleEndian: row.loadUnaligned(fromByteOffset: 2 * slot, as: UInt16.self)))
    }

    /// Decodes `rows` rows from `payload` into `output` (`rows × rowLength`).
    public func decode(_ payload: UnsafeRawBufferPointer, rows: Int, into output: UnsafeMutableBufferPointer<Float>) {
        for r in 0..<rows {
            let row = payload.baseAddress! + r * rowStride
            for (index, segment) in segments.enumerated() {
                let scale = scale(row, slot: segment.slot)
                let zero = zero(row, slot: segment.slot)
                let segmentCodes = row + headerBytes + segmentOffsets[index]
                for i in 0..<segment.count {
                    output[r * rowLength + segment.start + i] =
                        Float(Self.code(segmentCodes, segment, i) - zero) * scale
                }
            }
        }
    }

    // MARK: - Encoding

    /// Packs `values` (`rows × rowLength`) when every value is exactly `Float(k) · scale` for one
    /// scale per (row, slot) and integers k that in-range codes q = k + z reach (z = 0 without zero
    /// points); nil when some row slot has no such grid, so a caller never stores an approximation
    /// it did not ask for.
    public func encodeExactly(_ values: UnsafeBufferPointer<Float>, rows: Int) -> [UInt8]? {
        var payload = [UInt8](repeating: 0, count: byteCount(rows: rows))
        let members = (0..<slotCount).map { slot in segments.filter { $0.slot == slot } }
        let ok = payload.withUnsafeMutableBytes { out -> Bool in
            for r in 0..<rows {
                let row = UnsafeBufferPointer(rebasing: values[(r * rowLength)..<((r + 1) * rowLength)])
                for slot in 0..<slotCount {
                    guard
                        let (scale, zero) = Self.exactGrid(
                            row, members[slot], zeroPoints: zeroPoints, halfScale: halfScales)
                    else { return false }
                    if halfScales {
                        out.storeBytes(
                            of: HalfPrecision.f16Bits(scale).littleEndian, toByteOffset: r * rowStride + 2 * slot,
                            as: UInt16.self)
                    } else {
                        out.storeBytes(
                            of: scale.bitPattern.littleEndian, toByteOffset: r * rowStride + 4 * slot, as: UInt32.self)
                    }
                    if zeroPoints {
                        out.storeBytes(
                            of: Int8(zero), toByteOffset: r * rowStride + scaleBytes * slotCount + slot, as: Int8.self)
                    }
                    for (index, segment) in segments.enumerated() where segment.slot == slot {
                        let codes = out.baseAddress! + r * rowStride + headerBytes + segmentOffsets[index]
                        for i in 0..<segment.count {
                            let k = scale == 0 ? 0 : Int((row[segment.start + i] / scale).rounded(.toNearestOrEven))
                            Self.store(k + zero, codes, segment, i)
                        }
                    }
                }
            }
            return true
        }
        return ok ? payload : nil
    }

    static func store(_ q: Int, _ codes: UnsafeMutableRawPointer, _ segment: Segment, _ i: Int) {
        if segment.bits == 8 {
            codes.storeBytes(of: Int8(q), toByteOffset: i, as: Int8.self)
            return
        }
        let block = i / nibbleBlock
        let m = min(nibbleBlock, segment.count - block * nibbleBlock)
        let h = (m + 1) / 2
        let j = i - block * nibbleBlock
        let offset = block * (nibbleBlock / 2) + (j < h ? j : j - h)
        let nibble = UInt8(q + 8)
        let old = codes.load(fromByteOffset: offset, as: UInt8.self)
        codes.storeBytes(
            of: j < h ? (old & 0xF0) | nibble : (old & 0x0F) | (nibble << 4), toByteOffset: offset, as: UInt8.self)
    }

    /// A scale s and zero point z with every member value equal to `Float(k) · s` for an integer k
    /// whose code k + z is in range: the largest magnitude divided by each possible top |k|, nudged by
    /// a few ulps to undo the division's rounding. Without zero points z = 0 and k is the code; with
    /// them, the ks may span any window of 2^bits − 1 steps inside ±(2^bits − 1), and z is the one
    /// nearest 0 that fits them (any that fits gives the same values). With `halfScale` only scales
    /// that F16 holds exactly count.
    static func exactGrid(_ row: UnsafeBufferPointer<Float>, _ members: [Segment], zeroPoints: Bool, halfScale: Bool)
        -> (scale: Float, zero: Int)?
    {
        guard let first = members.first else { return (0, 0) }
        var largest: Float = 0
        for segment in members {
            for i in segment.start..<(segment.start + segment.count) {
                guard row[i].isFinite else { return nil }
                largest = max(largest, abs(row[i]))
            }
        }
        if largest == 0 { return (0, 0) }
        let bits = first.bits
        guard members.allSatisfy({ $0.bits == bits }) else { return nil }
        let (lowest, highest) = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        let steps = highest - lowest
        /// The zero point that puts every k in range, if one does.
        func fits(_ s: Float) -> Int? {
            guard s > 0, s.isFinite, !halfScale || HalfPrecision.float(fromF16: HalfPrecision.f16Bits(s)) == s else {
                return nil
            }
            var (low, high) = (Float.infinity, -Float.infinity)
            for segment in members {
                for i in segment.start..<(segment.start + segment.count) {
                    let k = (row[i] / s).rounded(.toNearestOrEven)
                    guard k * s == row[i] else { return nil }
                    (low, high) = (min(low, k), max(high, k))
                }
            }
            guard zeroPoints else { return low >= Float(lowest) && high <= Float(highest) ? 0 : nil }
            guard high - low <= Float(steps), low >= -Float(steps), high <= Float(steps) else { return nil }
            return min(max(0, lowest - Int(low)), highest - Int(high))
        }
        let tops = zeroPoints ? Array((1...steps).reversed()) : [highest, -lowest] + (1..<highest).reversed()
        for top in tops {
            let base = largest / Float(top)
            var candidates = [base]
            var (up, down) = (base, base)
            for _ in 0..<3 {
                up = up.nextUp
                down = down.nextDown
                candidates += [up, down]
            }
            for s in candidates {
                if let zero = fits(s) { return (s, zero) }
            }
        }
        return nil
    }
}
