/// A buffer that keeps its base address until it has to grow, so the kernels take plain pointers
/// with no `withUnsafe…` scope around each call.
final class ScratchBuffer<Element> {
    private(set) var base: UnsafeMutablePointer<Element>
    private var capacity = 1
    private let fill: Element

    init(filling fill: Element) {
        self.fill = fill
        base = .allocate(capacity: 1)
        base.initialize(to: fill)
    }

    deinit {
        base.deinitialize(count: capacity)
        base.deallocate()
    }

    /// Room for at least `count` elements; a new allocation, filled, only when it has to grow.
    func reserve(_ count: Int) {
        guard count > capacity else { return }
        base.deinitialize(count: capacity)
        base.deallocate()
        base = .allocate(capacity: count)
        base.initialize(repeating: fill, count: count)
        capacity = count
    }
}
