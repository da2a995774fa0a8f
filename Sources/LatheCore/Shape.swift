/// A tensor shape, outermost dimension first (row-major; the last dimension is contiguous).
public struct Shape: Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dimensions: [Int]

    public init(_ dimensions: [Int]) { self.dimensions = dimensions }
    public init(arrayLiteral elements: Int...) { self.dimensions = elements }

    public var rank: Int { dimensions.count }

    /// The number of elements, checked for negative dimensions and overflow.
    public func elementCount() throws(LatheError) -> Int {
        var count = 1
        for dimension in dimensions {
            guard dimension >= 0 else { throw .invalidShape(dimensions, reason: "negative dimension") }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { throw .invalidShape(dimensions, reason: "element count overflows") }
            count = product
        }
        return count
    }

    public var description: String { "[" + dimensions.map(String.init).joined(separator: ", ") + "]" }

    public init(from decoder: any Decoder) throws { dimensions = try [Int](from: decoder) }
    public func encode(to encoder: any Encoder) throws { try dimensions.encode(to: encoder) }
}

/// What a reader knows about a tensor before touching its data.
public struct TensorInfo: Hashable, Sendable {
    public var name: String
    public var dtype: DType
    public var shape: Shape

    public init(name: String, dtype: DType, shape: Shape) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// The payload size implied by dtype and shape.
    public func byteCount() throws(LatheError) -> Int {
        do { return try dtype.byteCount(for: shape) } catch { throw error.inTensor(name) }
    }
}
