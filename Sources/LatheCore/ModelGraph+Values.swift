extension ModelGraph {
    /// A tensor's values decoded to Float32 (any encoding the readers produce).
    public func floats(_ name: String) throws -> [Float] {
        // Its pages dropped once decoded: a pass over a model larger than memory keeps about one tensor resident.
        try TensorCodec.decodeReleasingPages(tensor(named: name))
    }

    /// Stores `values` as an F32 tensor: replaces the tensor of that name in place (keeping its shape
    /// unless `shape` is given), or appends a new one, which needs `shape`.
    public mutating func setFloats(_ name: String, _ values: [Float], shape: Shape? = nil) throws {
        let existing = self[name]
        guard let shape = shape ?? existing?.info.shape else { throw LatheError.unknownTensor(name) }
        guard try shape.elementCount() == values.count else {
            throw LatheError.inTensor(
                name, .invalidShape(shape.dimensions, reason: "\(values.count) values do not fill it"))
        }
        let storage = try spill?.store(values) ?? TensorStorage(values: values)
        let tensor = Tensor(info: TensorInfo(name: name, dtype: .f32, shape: shape), storage: storage)
        if existing == nil { try append(tensor) } else { try replace(tensor) }
    }

    /// The `[rows, columns]` of a matrix tensor, or an error naming it.
    public func matrixShape(_ name: String) throws -> (rows: Int, columns: Int) {
        let dimensions = try tensor(named: name).info.shape.dimensions
        guard dimensions.count == 2 else {
            throw LatheError.inTensor(name, .invalidShape(dimensions, reason: "expected a matrix"))
        }
        return (dimensions[0], dimensions[1])
    }
}
