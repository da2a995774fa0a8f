/// Lathe's packed integer matrix encoding (`formats/packed/SPEC.md` §4): each row of a matrix is cut
/// into contiguous column segments, each with its own bit width (4 or 8) and a scale slot; every row
/// has one F32 scale per slot, shared by the segments that name it. Values are `Float(q) · scale`
/// with symmetric integer codes q, exactly the grid the weight quantization pass simulates.
///
/// Payload: rows one after another, `rowStride` bytes each: the row's `slotCount` F32 scales
/// (little-endian), then its segments' codes in order. Whole rows keep every row-wise consumer (a
/// streaming conversion, a GEMV over a row range) simple. An 8-bit segment holds its codes as
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
    public let rowLength: Int
    public let rowCodeBytes: Int
    /// Byte offset of each segment inside a row's codes.
    public let segmentOffsets: [Int]

    /// Checks that the segments tile `0..<rowLength` in order with 4- or 8-bit codes and valid slots.
    public init(segments: [Segment], slotCount: Int) throws(LatheError) {
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
        rowLength = next
        rowCodeBytes = bytes
        segmentOffsets = offsets
    }

    /// Bytes of one row: its scales, then its codes.
    public var rowStride: Int { 4 * slotCount + rowCodeBytes }

    public func byteCount(rows: Int) -> Int { rows * rowStride }

    /// The payload size of `rows` rows, or nil when it overflows.
    public func checkedByteCount(rows: Int) -> Int? {
        let (bytes, overflow) = rows.multipliedReportingOverflow(by: rowStride)
        return overflow ? nil : bytes
    }

    /// Storage bits per weight, scales included.
    public var bitsPerWeight: Double { Double(8 * (4 * slotCount + rowCodeBytes)) / Double(max(rowLength, 1)) }

    public static func == (a: Self, b: Self) -> Bool { a.segments == b.segments && a.slotCount == b.slotCount }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(segments)
        hasher.combine(slotCount)
    }

    /// `PACKED4/8` and the number of scale slots: enough to tell layouts apart in a table.
    public var description: String {
        let widths = Set(segments.map(\.bits)).sorted().map(String.init).joined(separator: "/")
        return "PACKED\(widths)x\(slotCount)"
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

    /// Decodes `rows` rows from `payload` into `output` (`rows × rowLength`).
    public func decode(_ payload: UnsafeRawBufferPointer, rows: Int, into output: UnsafeMutableBufferPointer<Float>) {
        for r in 0..<rows {
            let codes = payload.baseAddress! + r * rowStride + 4 * slotCount
            for (index, segment) in segments.enumerated() {
                let scale = payload.loadUnaligned(fromByteOffset: r * rowStride + 4 * segment.slot, as: Float.self)
                let segmentCodes = codes + segmentOffsets[index]
                for i in 0..<segment.count {
                    output[r * rowLength + segment.start + i] = Float(Self.code(segmentCodes, segment, i)) * scale
                }
            }
        }
    }

    // MARK: - Encoding

    /// Packs `values` (`rows × rowLength`) when every value is exactly `Float(q) · scale` for one
    /// scale per (row, slot) and in-range codes; nil when some row slot has no such scale, so a
    /// caller never stores an approximation it did not ask for.
    public func encodeExactly(_ values: UnsafeBufferPointer<Float>, rows: Int) -> [UInt8]? {
        var payload = [UInt8](repeating: 0, count: byteCount(rows: rows))
        let ok = payload.withUnsafeMutableBytes { out -> Bool in
            for r in 0..<rows {
                let row = UnsafeBufferPointer(rebasing: values[(r * rowLength)..<((r + 1) * rowLength)])
                for slot in 0..<slotCount {
                    let members = segments.filter { $0.slot == slot }
                    guard let scale = Self.exactScale(row, members) else { return false }
                    out.storeBytes(of: scale, toByteOffset: r * rowStride + 4 * slot, as: Float.self)
                    for (index, segment) in segments.enumerated() where segment.slot == slot {
                        let codes = out.baseAddress! + r * rowStride + 4 * slotCount + segmentOffsets[index]
                        for i in 0..<segment.count {
                            let q = scale == 0 ? 0 : Int((row[segment.start + i] / scale).rounded(.toNearestOrEven))
                            Self.store(q, codes, segment, i)
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

    /// A scale s with every member value equal to `Float(q) · s` for an in-range q: the largest
    /// magnitude divided by each possible top code, nudged by a few ulps to undo the division's rounding.
    static func exactScale(_ row: UnsafeBufferPointer<Float>, _ members: [Segment]) -> Float? {
        guard let first = members.first else { return 0 }
        var largest: Float = 0
        for segment in members {
            for i in segment.start..<(segment.start + segment.count) {
                guard row[i].isFinite else { return nil }
                largest = max(largest, abs(row[i]))
            }
        }
        if largest == 0 { return 0 }
        let bits = first.bits
        guard members.allSatisfy({ $0.bits == bits }) else { return nil }
        let (lowest, highest) = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        func fits(_ s: Float) -> Bool {
            guard s > 0, s.isFinite else { return false }
            for segment in members {
                for i in segment.start..<(segment.start + segment.count) {
                    let q = (row[i] / s).rounded(.toNearestOrEven)
                    guard q >= Float(lowest), q <= Float(highest), q * s == row[i] else { return false }
                }
            }
            return true
        }
        for top in [highest, -lowest] + (1..<highest).reversed() {
            let base = largest / Float(top)
            var candidates = [base]
            var (up, down) = (base, base)
            for _ in 0..<3 {
                up = up.nextUp
                down = down.nextDown
                candidates += [up, down]
            }
            if let s = candidates.first(where: fits) { return s }
        }
        return nil
    }
}
