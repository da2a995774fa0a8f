import LatheCore

/// One tensor entry of a safetensors header.
struct SafetensorsEntry {
    var name: String
    var dtype: DType
    var shape: [Int]
    /// Offsets into the data buffer (after the header).
    var begin: Int
    var end: Int
}

/// A parsed and validated safetensors header, checked in the reference parser's order
/// (formats.md §1.4), with duplicate keys rejected explicitly.
struct SafetensorsHeader {
    static let maxHeaderLength = 100_000_000
    /// The schema's bound on sizes and offsets (48-bit naturals).
    static let maxOffset = (1 << 48) - 1

    var entries: [SafetensorsEntry]
    /// `__metadata__`, string to string, in file order.
    var metadata: [(key: String, value: String)]
    var dataStart: Int

    init(_ bytes: UnsafeRawBufferPointer, path: String) throws(SafetensorsError) {
        func fail(_ rule: SafetensorsError.Rule, _ field: String, _ problem: String) -> SafetensorsError {
            SafetensorsError(path: path, rule: rule, field: field, problem: problem)
        }
        guard bytes.count >= 8 else {
            throw fail(
                .headerTooSmall, "header length",
                "the file has \(bytes.count) bytes, fewer than the 8-byte length prefix")
        }
        let length = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard length <= UInt64(Self.maxHeaderLength) else {
            throw fail(.headerTooLarge, "header length", "\(length) bytes exceeds the 100,000,000-byte limit")
        }
        guard 8 + Int(length) <= bytes.count else {
            throw fail(
                .invalidHeaderLength, "header length",
                "\(length) bytes runs past the end of the \(bytes.count)-byte file")
        }
        dataStart = 8 + Int(length)
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
        guard UTF8Text.isValid(headerBytes) else {
            throw fail(.invalidHeader, "header", "not valid UTF-8")
        }
        // Member by member, never the whole tree: a header may list a million tensors.
        var entries: [SafetensorsEntry] = []
        var metadata: [(key: String, value: String)] = []
        // The first invalid member is reported once the whole text has parsed, so a syntax error
        // anywhere still comes first, as in the reference parser.
        var invalid: SafetensorsError?
        do {
            try JSONValue.forEachMember(ofObject: headerBytes) { key, value in
                guard invalid == nil else { return }
                do throws(SafetensorsError) {
                    if key == "__metadata__" {
                        metadata = try Self.metadata(value, fail: fail)
                    } else {
                        entries.append(try Self.entry(key, value, fail: fail))
                    }
                } catch {
                    invalid = error
                }
            }
        } catch {
            let rule: SafetensorsError.Rule =
                error.reason.hasPrefix("duplicate key") ? .duplicateKey : .invalidHeaderDeserialization
            if error.reason == "expected an object" {
                // Not an object: its own syntax error first, if it has one, as before.
                do throws(JSONParseError) { _ = try JSONValue.parse(headerBytes) } catch {
                    throw fail(.invalidHeaderDeserialization, "header byte \(error.offset)", error.reason)
                }
                throw fail(rule, "header", "the JSON is not an object")
            }
            throw fail(rule, "header byte \(error.offset)", error.reason)
        }
        if let invalid { throw invalid }
        self.entries = entries
        self.metadata = metadata

        // No gaps, no overlaps: sorted by (begin, end), the offsets must tile the buffer from 0.
        let sorted = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for entry in sorted {
            guard entry.begin == expected, entry.end >= entry.begin else {
                let problem =
                    entry.begin > expected
                    ? "data_offsets [\(entry.begin), \(entry.end)] leave a gap after byte \(expected)"
                    : "data_offsets [\(entry.begin), \(entry.end)] overlap the previous tensor, which ends at \(expected)"
                throw fail(.invalidOffset, "tensor '\(entry.name)'", problem)
            }
            expected = entry.end
        }
        for entry in entries {
            let field = "tensor '\(entry.name)'"
            let count: Int
            do { count = try Shape(entry.shape).elementCount() } catch {
                throw fail(.validationOverflow, field, "shape \(entry.shape) overflows")
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: entry.dtype.scalarByteSize ?? 1)
            guard !overflow else {
                throw fail(.validationOverflow, field, "byte size of shape \(entry.shape) overflows")
            }
            guard entry.end - entry.begin == bytes else {
                throw fail(
                    .tensorInvalidInfo, field,
                    "data_offsets span \(entry.end - entry.begin) bytes but \(entry.dtype) \(entry.shape) needs \(bytes)"
                )
            }
        }
        guard dataStart + expected == bytes.count else {
            throw fail(
                .metadataIncompleteBuffer, "data",
                "the tensors cover \(expected) bytes after the header but the file has \(bytes.count - dataStart)")
        }
    }

    private static func metadata(
        _ value: JSONValue, fail: (SafetensorsError.Rule, String, String) -> SafetensorsError
    ) throws(SafetensorsError) -> [(key: String, value: String)] {
        guard let fields = value.objectValue else {
            throw fail(.invalidHeaderDeserialization, "__metadata__", "must be an object of strings")
        }
        var metadata: [(key: String, value: String)] = []
        for (key, value) in fields {
            guard let text = value.stringValue else {
                throw fail(
                    .invalidHeaderDeserialization, "__metadata__.\(key)",
                    "value must be a string, got \(value.serialized().prefix(40))")
            }
            metadata.append((key, text))
        }
        return metadata
    }

    private static func entry(
        _ name: String, _ value: JSONValue, fail: (SafetensorsError.Rule, String, String) -> SafetensorsError
    ) throws(SafetensorsError) -> SafetensorsEntry {
        let field = "tensor '\(name)'"
        guard let dtypeName = value["dtype"]?.stringValue, let shapeJSON = value["shape"]?.arrayValue,
            let offsetsJSON = value["data_offsets"]?.arrayValue
        else {
            throw fail(
                .invalidHeaderDeserialization, field,
                "needs string \"dtype\", array \"shape\" and array \"data_offsets\"")
        }
        let (known, dtype) = SafetensorsDType.lookup(dtypeName)
        guard known else { throw fail(.unknownDType, field, "unknown dtype '\(dtypeName)'") }
        guard let dtype else {
            throw fail(.misalignedSlice, field, "sub-byte dtype \(dtypeName) is not supported by Lathe")
        }
        func natural(_ json: JSONValue, _ what: String) throws(SafetensorsError) -> Int {
            guard case .number(let text) = json, let value = Int(text), value >= 0, value <= maxOffset else {
                throw fail(
                    .invalidHeaderDeserialization, field,
                    "\(what) must be a non-negative integer below 2^48, got \(json.serialized())")
            }
            return value
        }
        var shape: [Int] = []
        for dimension in shapeJSON { shape.append(try natural(dimension, "shape entries")) }
        guard offsetsJSON.count == 2 else {
            throw fail(.invalidHeaderDeserialization, field, "data_offsets must have exactly two entries")
        }
        return SafetensorsEntry(
            name: name, dtype: dtype, shape: shape, begin: try natural(offsetsJSON[0], "data_offsets"),
            end: try natural(offsetsJSON[1], "data_offsets"))
    }
}
