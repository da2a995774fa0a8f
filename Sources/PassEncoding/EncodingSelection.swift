import LatheCore

/// Which tensors an encoding pass touches: a name pattern and a minimum rank.
struct EncodingSelection {
    let pattern: TensorPattern?
    let minimumRank: Int

    /// Every tensor (for passes that choose per tensor themselves).
    static let everything = EncodingSelection(pattern: nil, minimumRank: 0)

    init(pattern: TensorPattern?, minimumRank: Int) {
        self.pattern = pattern
        self.minimumRank = minimumRank
    }

    init(tensors: String?, minimumRank: Int, passID: String) throws {
        self.init(
            pattern: try tensors.map { try TensorPattern($0, field: "options of pass '\(passID)': tensors") },
            minimumRank: minimumRank)
    }

    /// Lathe's own record tensors (`lathe.*`, such as the residual rotation kept for verification)
    /// are not weights: only a pattern naming them selects them.
    func selects(_ tensor: Tensor) -> Bool {
        guard tensor.info.shape.rank >= minimumRank else { return false }
        guard let pattern else { return !tensor.name.hasPrefix("lathe.") }
        return pattern.matches(tensor.name)
    }
}

/// Plans re-encoding the selected tensors as `target(tensor)`: a decision per tensor, and an error
/// naming the tensor when the encoding does not fit its shape (never a silent fallback).
func planEncoding(
    _ graph: ModelGraph, passID: String, selection: EncodingSelection, target: (Tensor) -> DType
) throws -> PassPlan {
    var plan = PassPlan()
    for tensor in graph.tensors where selection.selects(tensor) {
        let dtype = target(tensor)
        guard dtype != tensor.info.dtype else { continue }
        guard TensorCodec.canDecode(tensor.info.dtype), TensorCodec.canEncode(dtype) else {
            throw LatheError.inTensor(
                tensor.name,
                .notImplemented(capability: "converting \(tensor.info.dtype) to \(dtype)", detail: "pass '\(passID)'"))
        }
        let converted = TensorInfo(name: tensor.name, dtype: dtype, shape: tensor.info.shape)
        let bytes = try converted.byteCount()
        plan.decisions.append(TensorDecision(tensor: tensor.name, from: tensor.info.dtype, to: dtype, reason: passID))
        plan.changedTensors.append(tensor.name)
        plan.peakBytes = max(plan.peakBytes, bytes)
    }
    return plan
}

/// Replaces each planned tensor by one converted when a writer asks for its bytes.
func applyEncoding(_ plan: PassPlan, to graph: inout ModelGraph) throws {
    for decision in plan.decisions {
        try graph.replace(TensorCodec.streamingConversion(graph.tensor(named: decision.tensor), to: decision.to))
    }
}
