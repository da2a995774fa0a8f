import Dispatch

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
        let count = values.count
        switch dtype {
        case .f32:
            return [UInt8](unsafeUninitializedCapacity: 4 * count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(values))
                initialized = 4 * count
            }
        case .f16:
            return [UInt8](unsafeUninitializedCapacity: 2 * count) { buffer, initialized in
                let out = UnsafeMutableRawBufferPointer(buffer)
                for i in 0..<count {
                    out.storeBytes(
                        of: HalfPrecision.f16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
                initialized = 2 * count
            }
        case .bf16:
            return [UInt8](unsafeUninitializedCapacity: 2 * count) { buffer, initialized in
                let out = UnsafeMutableRawBufferPointer(buffer)
                for i in 0..<count {
                    out.storeBytes(
                        of: HalfPrecision.bf16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
                initialized = 2 * count
            }
        case .f64:
            return [UInt8](unsafeUninitializedCapacity: 8 * count) { buffer, initialized in
                for i in 0..<count {
                    UnsafeMutableRawBufferPointer(buffer).storeBytes(
                        of: Double(values[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                }
                initialized = 8 * count
            }
        case .quantized(.ggml(let type)) where GGMLQuantize.supportedTypes.contains(type):
            guard count % type.blockSize == 0 else {
                throw .invalidShape(
                    [count],
                    reason: "\(count) values are not a whole number of \(type.name) blocks of \(type.blockSize)")
            }
            let size = count / type.blockSize * type.bytesPerBlock
            return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
                GGMLQuantize.blocks(type, from: values, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = size
            }
        default:
            throw .invalidValue(
                field: "target type", value: "\(dtype)", expected: "F32, F16, BF16, F64 or a supported ggml type")
        }
    }

    /// Re-encodes a tensor as `dtype` into an owned buffer, checking that the shape fits the encoding
    /// (the streaming conversion, collected).
    public static func convert(_ tensor: Tensor, to dtype: DType) throws -> Tensor {
        let streamed = try streamingConversion(tensor, to: dtype)
        return Tensor(info: streamed.info, storage: try streamed.storage())
    }

    /// `tensor` re-encoded as `dtype`, produced in row chunks straight into the consumer: two chunks
    /// at a time are converted on the cores into one reused buffer, then handed on in order, so no
    /// tensor-sized buffer is ever allocated.
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
            let rowsPerChunk = max(1, (1 << 18) / rowLength)
            let workers = 2
            var buffer = [UInt8](repeating: 0, count: min(rows, rowsPerChunk * workers) * targetRowBytes)
            var failure: (any Error)?
            try source.withUnsafeBytes { input in
                var row = 0
                while row < rows {
                    let batchRows = min(rowsPerChunk * workers, rows - row)
                    let chunks = (batchRows + rowsPerChunk - 1) / rowsPerChunk
                    var errors = [LatheError?](repeating: nil, count: chunks)
                    buffer.withUnsafeMutableBytes { target in
                        errors.withUnsafeMutableBufferPointer { slots in
                            let (t, i, e) = (UnsafeShared(target), UnsafeShared(input), UnsafeShared(slots))
                            let first = row
                            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                                let start = first + chunk * rowsPerChunk
                                let n = min(rowsPerChunk, first + batchRows - start)
                                let from = UnsafeRawBufferPointer(
                                    rebasing: i.value[(start * sourceRowBytes)..<((start + n) * sourceRowBytes)])
                                let local = (start - first) * targetRowBytes
                                let into = UnsafeMutableRawBufferPointer(
                                    rebasing: t.value[local..<(local + n * targetRowBytes)])
                                do {
                                    try convertRows(
                                        from: from, tensor.info.dtype, into: into, dtype, elements: n * rowLength)
                                } catch {
                                    e.value[chunk] = error as? LatheError
                                }
                            }
                        }
                    }
                    if let error = errors.lazy.compactMap({ $0 }).first {
                        failure = error.inTensor(tensor.name)
                        return
                    }
                    try buffer.withUnsafeBytes {
                        try sink(UnsafeRawBufferPointer(rebasing: $0[0..<(batchRows * targetRowBytes)]))
                    }
                    row += batchRows
                }
            }
            source.dropCachedPages()
            if let failure { throw failure }
        }
    }

    /// Decodes a run of whole rows into scratch floats and encodes them straight into `target`.
    private static func convertRows(
        from source: UnsafeRawBufferPointer, _ sourceType: DType, into target: UnsafeMutableRawBufferPointer,
        _ targetType: DType,
        elements: Int
    ) throws(LatheError) {
        // F32 input that is suitably aligned is read in place (mapped files align tensors); the block
        // quantizers write straight into the output.
        let direct = sourceType == .f32 && Int(bitPattern: source.baseAddress) % MemoryLayout<Float>.alignment == 0
        let scratch = direct ? nil : UnsafeMutableBufferPointer<Float>.allocate(capacity: elements)
        defer { scratch?.deallocate() }
        if let scratch { try decode(sourceType, from: source, into: scratch) }
        let values =
            scratch.map { UnsafeBufferPointer($0) }
            ?? UnsafeBufferPointer(start: source.baseAddress?.assumingMemoryBound(to: Float.self), count: elements)
        if case .quantized(.ggml(let type)) = targetType, GGMLQuantize.supportedTypes.contains(type) {
            GGMLQuantize.blocks(type, from: values, into: target)
            return
        }
        let encoded = try encode(values, as: targetType)
        encoded.withUnsafeBytes { target.copyMemory(from: $0) }
    }
}

/// A buffer handed to concurrent workers that each use a disjoint part of it.
private struct UnsafeShared<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
