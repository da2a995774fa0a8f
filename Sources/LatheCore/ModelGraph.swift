/// A tensor of a model: what it is, and where its bytes come from.
public struct Tensor: Sendable {
    /// Where the bytes come from. `computed` lets a conversion produce each tensor only when a writer
    /// asks for it, so memory stays bounded by about one tensor.
    public enum Payload: Sendable {
        case stored(TensorStorage)
        case computed(@Sendable () throws -> TensorStorage)
        /// Produced piece by piece, in order, into a sink: a writer never holds the whole tensor.
        case streamed(@Sendable (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)
    }

    public var info: TensorInfo
    public var payload: Payload

    public init(info: TensorInfo, storage: TensorStorage) {
        self.info = info
        self.payload = .stored(storage)
    }

    public init(info: TensorInfo, compute: @escaping @Sendable () throws -> TensorStorage) {
        self.info = info
        self.payload = .computed(compute)
    }

    public init(
        info: TensorInfo, stream: @escaping @Sendable (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) {
        self.info = info
        self.payload = .streamed(stream)
    }

    public var name: String { info.name }

    /// Hands the bytes to `body` in one or more pieces, in order, without materialising a streamed
    /// tensor; checks that the total matches dtype and shape.
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard case .streamed(let stream) = payload else {
            let storage = try storage()
            try storage.withUnsafeBytes(body)
            storage.dropCachedPages()
            return
        }
        var total = 0
        try stream { chunk in
            total += chunk.count
            try body(chunk)
        }
        try checkSize(total)
    }

    /// The bytes, computing (or collecting) them if needed; checks that their size matches dtype and shape.
    public func storage() throws -> TensorStorage {
        let storage: TensorStorage
        switch payload {
        case .stored(let stored): storage = stored
        case .computed(let compute): storage = try compute()
        case .streamed(let stream):
            // Collected straight into the buffer the storage keeps: one tensor-sized allocation.
            let capacity = try info.byteCount()
            let buffer = TensorStorage.allocateOwned(capacity)
            var filled = 0
            do {
                try stream { chunk in
                    guard filled + chunk.count <= capacity else {
                        throw LatheError.inTensor(
                            info.name,
                            .invalidValue(
                                field: "byte size", value: "more than \(capacity)",
                                expected: "\(capacity) for \(info.dtype) \(info.shape)"))
                    }
                    UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + chunk.count)]).copyMemory(
                        from: chunk)
                    filled += chunk.count
                }
            } catch {
                buffer.deallocate()
                throw error
            }
            storage = TensorStorage(owning: buffer, count: filled)
        }
        try checkSize(storage.byteCount)
        return storage
    }

    private func checkSize(_ count: Int) throws {
        let expected = try info.byteCount()
        guard count == expected else {
            throw LatheError.inTensor(
                info.name,
                .invalidValue(
                    field: "byte size", value: "\(count)", expected: "\(expected) for \(info.dtype) \(info.shape)"))
        }
    }
}

/// How a graph's tensors are named and laid out.
///
/// `huggingface` is Lathe's canonical layout: HF tensor names, PyTorch `[out, in]` shapes, and
/// q/k projection rows in HF's rotate-half order. Every format converts to it when reading and from
/// it when writing, so passes and the runtime see one layout. `gguf` keeps llama.cpp's names and
/// q/k row order, for showing a GGUF file as it is.
public enum TensorNaming: String, Sendable, Codable {
    case huggingface
    case gguf
}

/// A model as every format and pass sees it: named tensors in order, metadata, and the typed
/// architecture and tokenizer descriptions decoded from that metadata.
///
/// Shapes are always row-major, outermost dimension first (GGUF's `ne` reversed). Metadata uses
/// GGUF's key vocabulary (`general.*`, `llama.*`, `tokenizer.*`), the richest typed one.
public struct ModelGraph: Sendable {
    /// Where the model came from (a path, for messages).
    public var source: String
    /// The format id the graph was read from.
    public var sourceFormat: String = ""
    public var naming: TensorNaming = .huggingface
    public var metadata: Metadata
    public var config: LlamaConfig?

    /// The Llama config, checked (`LlamaConfig.validate`), for the passes and the runtime: an error
    /// naming the model when it has none or a field is out of range.
    public func llamaConfig() throws(LatheError) -> LlamaConfig {
        guard let config else { throw .missingField("Llama config", in: source) }
        do { try config.validate() } catch {
            throw .problem("\(source): Llama config", reason: error.errorDescription ?? "\(error)")
        }
        return config
    }
    public var tokenizer: TokenizerDescription?
    /// Where `setFloats` puts large computed tensors (in memory when nil); see `SpillStore`.
    public var spill: SpillStore?
    public private(set) var tensors: [Tensor]
    private var indexByName: [String: Int]

    public init(
        source: String, metadata: Metadata = Metadata(), config: LlamaConfig? = nil,
        tokenizer: TokenizerDescription? = nil, tensors: [Tensor] = []
    ) throws(LatheError) {
        self.source = source
        self.metadata = metadata
        self.config = config
        self.tokenizer = tokenizer
        self.tensors = []
        self.indexByName = [:]
        for tensor in tensors { try append(tensor) }
    }

    public var tensorNames: [String] { tensors.map(\.name) }

    public subscript(name: String) -> Tensor? {
        indexByName[name].map { tensors[$0] }
    }

    public func tensor(named name: String) throws(LatheError) -> Tensor {
        guard let index = indexByName[name] else { throw .unknownTensor(name) }
        return tensors[index]
    }

    /// Adds a tensor; a second tensor with the same name is an error.
    public mutating func append(_ tensor: Tensor) throws(LatheError) {
        guard indexByName[tensor.name] == nil else { throw .duplicateID(kind: "tensor", id: tensor.name) }
        indexByName[tensor.name] = tensors.count
        tensors.append(tensor)
    }

    /// Replaces the tensor of the same name, keeping its position.
    public mutating func replace(_ tensor: Tensor) throws(LatheError) {
        guard let index = indexByName[tensor.name] else { throw .unknownTensor(tensor.name) }
        tensors[index] = tensor
    }

    /// Replaces `name` by `tensor` (which may be renamed), keeping the position.
    public mutating func replace(_ name: String, with tensor: Tensor) throws(LatheError) {
        guard let index = indexByName[name] else { throw .unknownTensor(name) }
        if tensor.name != name {
            guard indexByName[tensor.name] == nil else { throw .duplicateID(kind: "tensor", id: tensor.name) }
            indexByName[name] = nil
            indexByName[tensor.name] = index
        }
        tensors[index] = tensor
    }

    public mutating func remove(_ name: String) throws(LatheError) {
        guard let index = indexByName[name] else { throw .unknownTensor(name) }
        tensors.remove(at: index)
        indexByName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    /// The encoding most matrices (rank ≥ 2) have, ties to the name first in order; what a file's
    /// one-word type says (GGUF's `general.file_type`, `config.json`'s `torch_dtype`).
    public var majorityMatrixEncoding: DType? {
        var counts: [DType: Int] = [:]
        for tensor in tensors where tensor.info.shape.rank >= 2 { counts[tensor.info.dtype, default: 0] += 1 }
        return counts.max { $0.value < $1.value || ($0.value == $1.value && "\($0.key)" > "\($1.key)") }?.key
    }

    /// Total payload bytes and element count over all tensors.
    public func totals() throws -> (bytes: Int, elements: Int) {
        var bytes = 0
        var elements = 0
        for tensor in tensors {
            bytes += try tensor.info.byteCount()
            elements += try tensor.info.shape.elementCount()
        }
        return (bytes, elements)
    }
}
