// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (function names follow ggml's type names: q4_0, q6_K, …)

/// ggml's reference quantizers for Q4_K and Q6_K (no importance matrix).
enum KQuantize {
    static func q4_K(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        preconditionFailure("Q4_K quantization is not implemented yet")
    }

    static func q6_K(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        preconditionFailure("Q6_K quantization is not implemented yet")
    }
}
