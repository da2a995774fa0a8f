import LatheCore

/// `pack-weights`: stores the matrices `quantize-weights` put on its integer grid as packed integer
/// codes with per-row scales, and zero points for an asymmetric grid (`PackedIntegerEncoding`),
/// losslessly: each row part's grid is recovered from the dequantized values and every value is
/// checked to lie exactly on it.
/// Embedding and head tables that an earlier pass rounded per row to 8 or 4 bits are packed too.
public struct PackWeightsPass: ModelPass {
    public struct Options: Codable, Sendable {
        /// Also pack the token embedding and output head when they sit exactly on a per-row grid
        /// (default true).
        public var tables: Bool?

        public init(tables: Bool? = nil) { self.tables = tables }
    }

    public static let passID = "pack-weights"
    public static let summary = "store quantized weights as packed int4/int8 codes with per-row scales (lossless)"

    let tables: Bool

    public init(options: Options) throws {
        tables = options.tables ?? true
    }

    /// The packed layout of each linear the weight record names.
    static func layouts(_ graph: ModelGraph) throws -> [(name: String, encoding: PackedIntegerEncoding)] {
        guard graph.config != nil, let record = try QuantizationScheme(metadata: graph.metadata).weights else {
            return []
        }
        let config = try graph.llamaConfig()
        var result: [(String, PackedIntegerEncoding)] = []
        for layer in 0..<config.layerCount {
            for kind in record.tensors {
                let name = LlamaTensorNames.layerTensor(layer, kind)
                guard let tensor = graph[name], tensor.info.shape.rank == 2 else { continue }
                let columns = tensor.info.shape.dimensions[1]
                result.append((name, try layout(kind: kind, columns: columns, record: record, headDim: config.headDim)))
            }
        }
        return result
    }

    /// Columns in the order `quantize-weights` groups them (low part, then high part, cut into
    /// groups of `groupSize`), merged into runs of equal width and scale slot.
    static func layout(kind: String, columns: Int, record: WeightQuantizationRecord, headDim: Int) throws
        -> PackedIntegerEncoding
    {
        guard record.actOrderGroups != true else {
            throw LatheError.invalidValue(
                field: "metadata \(QuantizationScheme.metadataKey): weights", value: "groups cut in act order",
                expected: "groups of contiguous columns (lpack's segments; quantize without actOrder or groupSize)")
        }
        guard (0...headDim).contains(record.headHighColumns), (0...columns).contains(record.hiddenHighColumns) else {
            throw LatheError.invalidValue(
                field: "metadata \(QuantizationScheme.metadataKey): weights",
                value: "\(record.hiddenHighColumns)/\(record.headHighColumns) high columns",
                expected: "at most the row (\(columns)) and the head (\(headDim))")
        }
        var high = [Bool](repeating: false, count: columns)
        switch kind {
        case "mlp.down_proj": break
        case "self_attn.o_proj":
            for head in 0..<(columns / headDim) {
                for c in ((head + 1) * headDim - record.headHighColumns)..<((head + 1) * headDim) { high[c] = true }
            }
        default:
            for c in max(0, columns - record.hiddenHighColumns)..<columns { high[c] = true }
        }
        var slot = [Int](repeating: 0, count: columns)
        var slots = 0
        for part in [false, true] {
            let members = (0..<columns).filter { high[$0] == part }
            let size = record.groupSize ?? max(members.count, 1)
            for start in stride(from: 0, to: members.count, by: size) {
                for c in members[start..<min(start + size, members.count)] { slot[c] = slots }
                slots += 1
            }
        }
        var segments: [PackedIntegerEncoding.Segment] = []
        for c in 0..<columns {
            let bits = high[c] ? record.highBits : record.bits
            if let last = segments.last, last.slot == slot[c], last.bits == bits {
                segments[segments.count - 1].count += 1
            } else {
                segments.append(.init(start: c, count: 1, bits: bits, slot: slot[c]))
            }
        }
        return try PackedIntegerEncoding(
            segments: segments, slotCount: slots, zeroPoints: record.asymmetric == true,
            halfScales: record.halfScales == true)
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let layouts = try Self.layouts(graph)
        guard !layouts.isEmpty else {
            return PassPlan(notes: ["no weight quantization recorded (run quantize-weights first): nothing to pack"])
        }
        var plan = PassPlan()
        for (name, encoding) in layouts {
            let tensor = try graph.tensor(named: name)
            guard tensor.info.dtype.isFloatingPoint else {
                plan.skipped.append("\(name): already \(tensor.info.dtype)")
                continue
            }
            let dtype = DType.quantized(.packed(encoding))
            _ = try TensorInfo(name: name, dtype: dtype, shape: tensor.info.shape).byteCount()
            plan.decisions.append(TensorDecision(tensor: name, from: tensor.info.dtype, to: dtype, reason: Self.passID))
            plan.changedTensors.append(name)
        }
        plan.notes.append(
            "\(plan.decisions.count) matrices packed; each row part's scale recovered and every value checked exact")
        return plan
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        for decision in try plan(graph).decisions {
            guard case .quantized(.packed(let encoding)) = decision.to else { continue }
            try graph.replace(try Self.pack(graph.tensor(named: decision.tensor), encoding))
        }
        guard tables else { return }
        for name in [LlamaTensorNames.embedding, LlamaTensorNames.head] {
            guard let tensor = graph[name], tensor.info.dtype.isFloatingPoint, tensor.info.shape.rank == 2 else {
                continue
            }
            let columns = tensor.info.shape.dimensions[1]
            let values = try TensorCodec.decode(tensor)  // once, for both widths
            for bits in [4, 8] {
                let encoding = try PackedIntegerEncoding(
                    segments: [.init(start: 0, count: columns, bits: bits, slot: 0)], slotCount: 1)
                if let packed = Self.pack(tensor, values: values, encoding) {
                    try graph.replace(packed)
                    context.diagnostics.info("pack-weights: \(name) packed per row at \(bits) bit")
                    break
                }
            }
        }
    }

    /// The tensor packed, or an error naming it when a value is off the grid.
    static func pack(_ tensor: Tensor, _ encoding: PackedIntegerEncoding) throws -> Tensor {
        guard let packed = pack(tensor, values: try TensorCodec.decode(tensor), encoding) else {
            throw LatheError.inTensor(
                tensor.name,
                .invalidValue(
                    field: "values", value: "off the \(encoding) grid",
                    expected:
                        "code · scale with one scale per row part (as quantize-weights leaves them; groups cut in act order by an older Lathe are not contiguous)"
                ))
        }
        return packed
    }

    /// `values` (the tensor's, decoded) packed as `encoding`, or nil when one is off its grid.
    static func pack(_ tensor: Tensor, values: [Float], _ encoding: PackedIntegerEncoding) -> Tensor? {
        let rows = values.count / encoding.rowLength
        guard let payload = values.withUnsafeBufferPointer({ encoding.encodeExactly($0, rows: rows) }) else {
            return nil
        }
        return Tensor(
            info: TensorInfo(name: tensor.name, dtype: .quantized(.packed(encoding)), shape: tensor.info.shape),
            storage: TensorStorage(bytes: payload))
    }
}
