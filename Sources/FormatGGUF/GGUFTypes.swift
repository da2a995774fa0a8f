import LatheCore

/// ggml's tensor type ids and how they map onto Lathe's DType.
enum GGMLTypeID {
    /// Ids of types ggml removed; a file using one is corrupt or from an incompatible build.
    static let removed: Set<UInt32> = [4, 5, 31, 32, 33, 36, 37, 38]
    /// One past the largest id current ggml knows (`GGML_TYPE_COUNT`).
    static let count: UInt32 = 43
    /// Names of valid ggml types Lathe cannot decode (codebook and ternary types), for messages.
    static let unsupportedNames: [UInt32: String] = [
        16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
        23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0", 42: "Q2_0",
    ]

    static func dtype(_ id: UInt32) -> DType? {
        switch id {
        case 0: .f32
        case 1: .f16
        case 24: .i8
        case 25: .i16
        case 26: .i32
        case 27: .i64
        case 28: .f64
        case 30: .bf16
        default: GGMLBlockType(rawValue: id).map { .quantized(.ggml($0)) }
        }
    }

    static func id(_ dtype: DType) -> UInt32? {
        switch dtype {
        case .f32: 0
        case .f16: 1
        case .i8: 24
        case .i16: 25
        case .i32: 26
        case .i64: 27
        case .f64: 28
        case .bf16: 30
        case .quantized(.ggml(let type)): type.rawValue
        default: nil
        }
    }

    /// `general.file_type` (gguf-py's LlamaFileType) for the majority tensor type.
    static func fileType(_ dtype: DType) -> UInt32? {
        switch dtype {
        case .f32: 0
        case .f16: 1
        case .bf16: 32
        case .quantized(.ggml(let type)):
            switch type {
            case .q4_0: 2
            case .q4_1: 3
            case .q8_0: 7
            case .q5_0: 8
            case .q5_1: 9
            case .q2_K: 10
            case .q3_K: 12
            case .q4_K: 15
            case .q5_K: 17
            case .q6_K: 18
            default: nil
            }
        default: nil
        }
    }
}
