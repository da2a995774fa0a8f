import Synchronization

/// Faster bodies for the hot encoders, installed by a module that has them: LatheCore stays pure
/// Swift, and `LatheBuiltins` installs Lathe's SIMD kernels when it builds its registry. An installed
/// body must write exactly the bytes of the portable Swift path, and says how much of the input it
/// did; the portable path does the rest.
public enum EncoderAcceleration {
    /// F32 → IEEE half bits into `output` (no alignment): returns how many leading values it converted.
    public typealias HalfEncoder =
        @Sendable (
            _ input: UnsafePointer<Float>, _ output: UnsafeMutableRawPointer, _ count: Int
        ) -> Int
    /// ggml blocks: returns how many leading blocks of `blocks` it wrote, stopping before one it
    /// leaves to the portable path (which calls it again for the rest), or -1 for a type it does not take
    /// (or when it cannot run on this CPU or thread).
    public typealias BlockQuantizer =
        @Sendable (
            _ type: GGMLBlockType, _ input: UnsafePointer<Float>, _ blocks: Int, _ output: UnsafeMutableRawPointer
        ) -> Int

    private final class Bodies: Sendable {
        let half: HalfEncoder?
        let blocks: BlockQuantizer?
        init(half: HalfEncoder?, blocks: BlockQuantizer?) {
            self.half = half
            self.blocks = blocks
        }
    }

    /// The installed bodies, read without a lock: encoders call in per row from several threads, and
    /// a contended lock there cost more than the SIMD saved. Replaced bodies are kept alive (installs
    /// are rare), so a reader never sees a freed one.
    private static let current = Atomic<Int>(0)  // the bodies' address; 0: none

    /// Installs (or, with nil, removes) the bodies; later encodes use them.
    public static func install(half: HalfEncoder?, blocks: BlockQuantizer?) {
        let bodies = Unmanaged.passRetained(Bodies(half: half, blocks: blocks))
        current.store(Int(bitPattern: bodies.toOpaque()), ordering: .releasing)
    }

    private static var bodies: Bodies? {
        UnsafeRawPointer(bitPattern: current.load(ordering: .acquiring)).map {
            Unmanaged<Bodies>.fromOpaque($0).takeUnretainedValue()
        }
    }

    /// Which bodies are installed (for diagnostics and tests).
    public static var isInstalled: (half: Bool, blocks: Bool) { (bodies?.half != nil, bodies?.blocks != nil) }

    static var half: HalfEncoder? { bodies?.half }
    static var blocks: BlockQuantizer? { bodies?.blocks }
}
