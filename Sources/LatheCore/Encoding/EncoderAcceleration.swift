import Synchronization

/// Faster bodies for the hot encoders, installed by a module that has them: LatheCore stays pure
/// Swift, and `LatheBuiltins` installs Lathe's SIMD kernels when it builds its registry. An installed
/// body must write exactly the bytes of the portable Swift path, and says how much of the input it
/// did; the portable path does the rest.
public enum EncoderAcceleration {
    /// F32 → IEEE half bits into `output` (no alignment): returns how many leading values it converted.
    public typealias HalfEncoder =
        @Sendable (_ input: UnsafePointer<Float>, _ output: UnsafeMutableRawPointer, _ count: Int)
        -> Int
    /// ggml blocks of finite values: returns how many leading blocks of `blocks` it wrote (0 for a
    /// type it does not take).
    public typealias BlockQuantizer =
        @Sendable (
            _ type: GGMLBlockType, _ input: UnsafePointer<Float>, _ blocks: Int, _ output: UnsafeMutableRawPointer
        ) -> Int

    private static let installed = Mutex<(half: HalfEncoder?, blocks: BlockQuantizer?)>((nil, nil))

    /// Installs (or, with nil, removes) the bodies; later encodes use them.
    public static func install(half: HalfEncoder?, blocks: BlockQuantizer?) {
        installed.withLock { $0 = (half, blocks) }
    }

    /// Which bodies are installed (for diagnostics and tests).
    public static var isInstalled: (half: Bool, blocks: Bool) {
        installed.withLock { ($0.half != nil, $0.blocks != nil) }
    }

    static var half: HalfEncoder? { installed.withLock { $0.half } }
    static var blocks: BlockQuantizer? { installed.withLock { $0.blocks } }
}
