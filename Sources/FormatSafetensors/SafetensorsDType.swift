import LatheCore

/// safetensors dtype strings (formats.md §1.2) in the reference enum's "increasing alignment" order,
/// which the writer's tensor order depends on.
enum SafetensorsDType {
    static let order: [(name: String, dtype: DType?)] = [
        ("BOOL", .bool), ("F4", nil), ("F6_E2M3", nil), ("F6_E3M2", nil), ("U8", .u8), ("I8", .i8),
        ("F8_E5M2", .f8E5M2), ("F8_E4M3", .f8E4M3), ("F8_E8M0", .f8E8M0), ("F8_E4M3FNUZ", .f8E4M3FNUZ),
        ("F8_E5M2FNUZ", .f8E5M2FNUZ), ("I16", .i16), ("U16", .u16), ("F16", .f16), ("BF16", .bf16), ("I32", .i32),
        ("U32", .u32), ("F32", .f32), ("C64", .c64), ("F64", .f64), ("I64", .i64), ("U64", .u64),
    ]

    /// The DType for a dtype string; nil for unknown strings, `.none` payload for sub-byte types.
    static func lookup(_ name: String) -> (known: Bool, dtype: DType?) {
        guard let entry = order.first(where: { $0.name == name }) else { return (false, nil) }
        return (true, entry.dtype)
    }

    static func name(_ dtype: DType) -> String? { order.first { $0.dtype == dtype }?.name }

    static func rank(_ dtype: DType) -> Int { order.firstIndex { $0.dtype == dtype } ?? 0 }
}
