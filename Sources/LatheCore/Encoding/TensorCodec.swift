/// Converts tensor payloads between their stored encoding and Float32 values.
public enum TensorCodec {
    /// Whether `dtype` can be decoded to floats.
    public static func canDecode(_ dtype: DType) -> Bool {
        switch dtype {
        case .c64: return false
        default: return true
        }
    }

    /// Whether floats can be encoded as `dtype`.
    public static func canEncode(_ dtype: DType) -> Bool {
        switch dtype {
        case .f32, .f16, .bf16, .f64: return true
        case .quantized(.ggml(let type)): return GGMLQuantize.supportedTypes.contains(type)
        default: return false
        }
    }

    /// Decodes `count` elements of `dtype` from `bytes` into `output`.
    public static func decode(
        _ dtype: DType, from bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>
    ) throws(LatheError) {
        let count = output.count
        switch dtype {
        case .f32:
            // Little-endian storage on a little-endian host: a plain copy.
            UnsafeMutableRawBufferPointer(output).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: bytes[0..<(4 * count)]))
        case .f16:
            for i in 0..<count { output[i] = bytes.f16(2 * i) }
        case .bf16:
            for i in 0..<count { output[i] = HalfPrecision.float(fromBF16: bytes.u16(2 * i)) }
        case .f64:
            for i in 0..<count {
                output[i] = Float(
                    Double(
                        bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .i8:
            for i in 0..<count { output[i] = Float(Int8(bitPattern: bytes[i])) }
        case .u8, .bool:
            for i in 0..<count { output[i] = Float(bytes[i]) }
        case .i16:
            for i in 0..<count { output[i] = Float(Int16(bitPattern: bytes.u16(2 * i))) }
        case .u16:
            for i in 0..<count { output[i] = Float(bytes.u16(2 * i)) }
        case .i32:
            for i in 0..<count { output[i] = Float(Int32(bitPattern: bytes.u32(4 * i))) }
        case .u32:
            for i in 0..<count { output[i] = Float(bytes.u32(4 * i)) }
        case .i64:
            for i in 0..<count {
                output[i] = Float(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
            }
        case .u64:
            for i in 0..<count {
                output[i] = Float(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
            }
        case .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ:
            let table = Float8.table(dtype)
            for i in 0..<count { output[i] = table[Int(bytes[i])] }
        case .c64:
            throw .invalidValue(
                field: "dtype", value: "C64", expected: "a real type (complex tensors cannot be decoded to floats)")
        case .quantized(.ggml(let type)):
            GGMLDequantize.blocks(type, from: bytes, into: output)
        case .quantized(.packed(let encoding)):
            guard encoding.rowLength > 0, count % encoding.rowLength == 0,
                bytes.count >= encoding.byteCount(rows: count / encoding.rowLength)
            else {
                throw .invalidValue(
                    field: "packed payload", value: "\(bytes.count) bytes for \(count) values",
                    expected: "whole rows of \(encoding.rowLength) columns")
            }
            encoding.decode(bytes, rows: count / encoding.rowLength, into: output)
        }
    }

    /// `decode`, then the tensor's mapped pages dropped (they are not needed once decoded): a model
    /// decoded a tensor at a time never becomes resident as a whole.
    public static func decodeReleasingPages(_ tensor: Tensor) throws -> [Float] {
        let storage = try tensor.storage()
        let values = try decode(Tensor(info: tensor.info, storage: storage))
        storage.dropCachedPages()
        return values
    }

    /// Decodes a whole tensor to floats.
    public static func decode(_ tensor: Tensor) throws -> [Float] {
        let count = try tensor.info.shape.elementCount()
        let storage = try tensor.storage()
        var values = [Float](repeating: 0, count: count)
        do {
            try storage.withUnsafeBytes { bytes in
                try values.withUnsafeMutableBufferPointer { try decode(tensor.info.dtype, from: bytes, into: $0) }
            }
        } catch let error as LatheError {
            throw error.inTensor(tensor.name)
        }
        return values
    }

    /// Encodes floats as `dtype` (little-endian).
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: DType) throws(LatheError) -> [UInt8] {
        let size = try encodedSize(values.count, as: dtype)
        // Not an uninitialized array of 0: its initializer writes into the shared empty storage.
        guard size > 0 else { return [] }
        return try [UInt8](unsafeUninitializedCapacity: size) { (buffer, initialized) throws(LatheError) in
            try encode(values, as: dtype, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = size
        }
    }

    /// The bytes `count` floats take as `dtype`, or an error when they cannot be encoded as it.
    private static func encodedSize(_ count: Int, as dtype: DType) throws(LatheError) -> Int {
        switch dtype {
        case .f32: return 4 * count
        case .f16, .bf16: return 2 * count
        case .f64: return 8 * count
        case .quantized(.ggml(let type)) where GGMLQuantize.supportedTypes.contains(type):
            guard count % type.blockSize == 0 else {
                throw .invalidShape(
                    [count],
                    reason: "\(count) values are not a whole number of \(type.name) blocks of \(type.blockSize)")
            }
            return count / type.blockSize * type.bytesPerBlock
        default:
            throw .invalidValue(
                field: "target type", value: "\(dtype)", expected: "F32, F16, BF16, F64 or a supported ggml type")
        }
    }

    /// Encodes floats as `dtype` into `output`, which holds at least their encoded size.
    public static func encode(
        _ values: UnsafeBufferPointer<Float>, as dtype: DType, into output: UnsafeMutableRawBufferPointer
    ) throws(LatheError) {
        let count = values.count
        let size = try encodedSize(count, as: dtype)
        precondition(output.count >= size, "output too small")
        switch dtype {
        case .f32:
            output.copyMemory(from: UnsafeRawBufferPointer(values))
        case .f16:
            HalfPrecision.encode(values, bf16: false, into: output.baseAddress!)
        case .bf16:
            HalfPrecision.encode(values, bf16: true, into: output.baseAddress!)
        case .f64:
            let out = output.baseAddress!
            for i in 0..<count {
                out.storeBytes(of: Double(values[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
            }
        case .quantized(.ggml(let type)):
            GGMLQuantize.blocks(type, from: values, into: output)
        default:
            preconditionFailure("encodedSize accepted \(dtype)")
        }
    }

    /// Re-encodes a tensor as `dtype` into an owned buffer, checking that the shape fits the encoding
    /// (the streaming conversion, collected).
    public static func convert(_ tensor: Tensor, to dtype: DType) throws -> Tensor {
        let streamed = try streamingConversion(tensor, to: dtype)
        return Tensor(info: streamed.info, storage: try streamed.storage())
    }

    /// `tensor` re-encoded as `dtype`, produced in row chunks straight into the consumer: chunks are
    /// converted on every core into a few reused slots and handed on in order while the next ones are
    /// converted (`OrderedChunkPipeline`), so no tensor-sized buffer is ever allocated.
    public static func streamingConversion(_ tensor: Tensor, to dtype: DType) throws -> Tensor {
        if tensor.info.dtype == dtype { return tensor }
        let info = TensorInfo(name: tensor.name, dtype: dtype, shape: tensor.info.shape)
        let outputBytes = try info.byteCount()
        return Tensor(info: info) { sink in
            let source = try tensor.storage()
            let count = try tensor.info.shape.elementCount()
            let rowLength = max(tensor.info.shape.dimensions.last ?? 1, 1)
            let rows = count / rowLength
            guard rows > 0 else { return }
            let (sourceRowBytes, targetRowBytes) = (source.byteCount / rows, outputBytes / rows)
            // About a megabyte of output per chunk: large enough that a write costs little per byte,
            // small enough that the slots stay in cache.
            let rowsPerChunk = max(1, (1 << 18) / rowLength)
            let pipeline = OrderedChunkPipeline(
                chunkCount: (rows + rowsPerChunk - 1) / rowsPerChunk, slotBytes: rowsPerChunk * targetRowBytes,
                workers: HelperThreads.shared.count + 1)
            let scratch = (0..<pipeline.workers).map { _ in
                UnsafeMutableBufferPointer<Float>.allocate(capacity: rowsPerChunk * rowLength)
            }
            defer { for buffer in scratch { buffer.deallocate() } }
            do {
                try source.withUnsafeBytes { input in
                    try pipeline.run(
                        produce: { chunk, slot, worker in
                            let start = chunk * rowsPerChunk
                            let n = min(rowsPerChunk, rows - start)
                            try convertRows(
                                from: UnsafeRawBufferPointer(
                                    rebasing: input[(start * sourceRowBytes)..<((start + n) * sourceRowBytes)]),
                                tensor.info.dtype,
                                into: UnsafeMutableRawBufferPointer(rebasing: slot[0..<(n * targetRowBytes)]), dtype,
                                elements: n * rowLength, scratch: scratch[worker])
                            return n * targetRowBytes
                        }, consume: sink)
                }
            } catch let error as LatheError {
                throw error.inTensor(tensor.name)
            }
            source.dropCachedPages()
        }
    }

    /// Decodes a run of whole rows and encodes them straight into `target`, through `scratch` floats
    /// only when neither side is F32 already.
    private static func convertRows(
        from source: UnsafeRawBufferPointer, _ sourceType: DType, into target: UnsafeMutableRawBufferPointer,
        _ targetType: DType, elements: Int, scratch: UnsafeMutableBufferPointer<Float>
    ) throws(LatheError) {
        if targetType == .f32, Int(bitPattern: target.baseAddress) % MemoryLayout<Float>.alignment == 0 {
            let floats = target.baseAddress!.assumingMemoryBound(to: Float.self)
            try decode(sourceType, from: source, into: UnsafeMutableBufferPointer(start: floats, count: elements))
            return
        }
        // F32 input that is suitably aligned is read in place (mapped files align tensors).
        let values: UnsafeBufferPointer<Float>
        if sourceType == .f32, Int(bitPattern: source.baseAddress) % MemoryLayout<Float>.alignment == 0 {
            values = UnsafeBufferPointer(
                start: source.baseAddress?.assumingMemoryBound(to: Float.self), count: elements)
        } else {
            let floats = UnsafeMutableBufferPointer(rebasing: scratch[0..<elements])
            try decode(sourceType, from: source, into: floats)
            values = UnsafeBufferPointer(floats)
        }
        try encode(values, as: targetType, into: target)
    }
}
