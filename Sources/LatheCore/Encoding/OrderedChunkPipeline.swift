import Foundation

/// Produces numbered chunks on several threads and consumes them strictly in order, overlapping the
/// two: a conversion's encoding runs on every core while one of them hands finished chunks to the
/// writer. Workers sleep on a condition instead of spinning, and each chunk goes into one of a few
/// reused slots, so memory stays at `slots × slotBytes` however long the stream.
///
/// Each worker, when it is free, first writes the next chunk in order if it is ready and no one else
/// is writing, and otherwise produces the next unclaimed chunk (while a slot is free). When writing is
/// the slower part, one thread writes while the others produce; when producing is, every thread
/// produces and writes in turns.
struct OrderedChunkPipeline {
    let chunkCount: Int
    let slotBytes: Int
    let workers: Int
    /// How many chunks may be produced ahead of the writer (at least `workers + 1`).
    let slots: Int

    init(chunkCount: Int, slotBytes: Int, workers: Int) {
        self.chunkCount = chunkCount
        self.slotBytes = slotBytes
        self.workers = max(1, min(workers, chunkCount))
        self.slots = min(chunkCount, 2 * self.workers)
    }

    /// Calls `produce(chunk, slot, worker)` for every chunk (on any worker; `slot` is `slotBytes` of
    /// memory that is the chunk's alone until it is consumed; it returns the bytes it filled), then
    /// `consume` with those bytes in chunk order. The first error stops the pipeline and is rethrown.
    func run(
        produce: (_ chunk: Int, _ slot: UnsafeMutableRawBufferPointer, _ worker: Int) throws -> Int,
        consume: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard chunkCount > 0 else { return }
        let memory = SlotMemory.shared.take(byteCount: max(slots * slotBytes, 1))
        defer { SlotMemory.shared.give(memory) }
        let state = PipelineState(slots: slots)
        withoutActuallyEscaping(produce) { produce in
            withoutActuallyEscaping(consume) { consume in
                let shared = UnsafeSendable((produce, consume, memory))
                let run = { @Sendable (worker: Int) in
                    let (produce, consume, memory) = shared.value
                    self.work(worker: worker, state: state, memory: memory, produce: produce, consume: consume)
                }
                HelperThreads.shared.run(workers, run)
            }
        }
        if let failure = state.failure { throw failure }
    }

    private func work(
        worker: Int, state: PipelineState, memory: UnsafeMutableRawBufferPointer,
        produce: (Int, UnsafeMutableRawBufferPointer, Int) throws -> Int,
        consume: (UnsafeRawBufferPointer) throws -> Void
    ) {
        func slot(_ chunk: Int) -> UnsafeMutableRawBufferPointer {
            let start = (chunk % slots) * slotBytes
            return UnsafeMutableRawBufferPointer(rebasing: memory[start..<(start + slotBytes)])
        }
        let condition = state.condition
        condition.lock()
        defer { condition.unlock() }
        while state.failure == nil, state.nextToConsume < chunkCount {
            let next = state.nextToConsume
            if !state.consuming, let filled = state.filled[next % slots] {
                state.consuming = true
                condition.unlock()
                let failure = Result { try consume(UnsafeRawBufferPointer(rebasing: slot(next)[0..<filled])) }
                condition.lock()
                state.filled[next % slots] = nil
                state.nextToConsume += 1
                state.consuming = false
                if case .failure(let error) = failure { state.failure = state.failure ?? error }
                condition.broadcast()
            } else if state.nextToProduce < min(chunkCount, state.nextToConsume + slots) {
                let chunk = state.nextToProduce
                state.nextToProduce += 1
                condition.unlock()
                let result = Result { try produce(chunk, slot(chunk), worker) }
                condition.lock()
                switch result {
                case .success(let filled): state.filled[chunk % slots] = filled
                case .failure(let error): state.failure = state.failure ?? error
                }
                condition.broadcast()
            } else {
                condition.wait()
            }
        }
        condition.broadcast()
    }
}

/// The pipeline's shared progress, guarded by `condition`.
private final class PipelineState: @unchecked Sendable {
    let condition = NSCondition()
    var nextToProduce = 0
    var nextToConsume = 0
    var consuming = false
    /// Bytes filled in each slot, or nil while it is free or being produced.
    var filled: [Int?]
    var failure: (any Error)?

    init(slots: Int) { filled = [Int?](repeating: nil, count: slots) }
}

/// A value (a pointer, a closure) handed to parallel workers that touch disjoint parts of it or
/// take turns under a lock: the conversion pipeline's and the runtime's.
public struct UnsafeSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

/// Threads that sleep until a pipeline needs them. Dispatch's workers spin on `sched_yield` while
/// they wait for each other, which on a two-core machine took CPU time from the conversion itself.
final class HelperThreads: @unchecked Sendable {
    static let shared = HelperThreads(count: ProcessInfo.processInfo.activeProcessorCount - 1)

    /// Threads besides the caller.
    let count: Int
    private let condition = NSCondition()
    /// Held by the caller that has the helpers.
    private let entry = NSLock()
    private var job: (@Sendable (Int) -> Void)?
    private var wanted = 0
    private var started = 0
    private var running = 0
    private var generation = 0

    private init(count: Int) {
        self.count = max(0, count)
        for helper in 0..<self.count {
            let thread = Thread { [unowned self] in self.serve(helper + 1) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(i)` for i in 0..<workers, i = 0 on the caller and the rest on helpers (as many as
    /// there are); returns when all have finished. While another caller has the helpers, every `i`
    /// runs on the caller in turn (a pipeline's first worker then does all the work).
    func run(_ workers: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let helpers = min(workers - 1, count)
        guard helpers > 0, entry.try() else {
            for worker in 0..<workers { body(worker) }
            return
        }
        defer { entry.unlock() }
        condition.lock()
        job = body
        wanted = helpers
        running = helpers
        generation += 1
        condition.broadcast()
        condition.unlock()
        body(0)
        for worker in (helpers + 1)..<max(workers, helpers + 1) { body(worker) }
        condition.lock()
        while running > 0 { condition.wait() }
        job = nil
        condition.unlock()
    }

    private func serve(_ index: Int) {
        var seen = 0
        condition.lock()
        while true {
            while generation == seen || index > wanted { condition.wait() }
            seen = generation
            let body = job!
            condition.unlock()
            body(index)
            condition.lock()
            running -= 1
            if running == 0 { condition.broadcast() }
        }
    }
}

/// The slots' memory, kept from one pipeline to the next: a conversion runs one pipeline per tensor,
/// and a block freed and allocated again each time could come back as fresh pages, each faulted in on
/// first touch (whether it does depends on glibc's mmap threshold, which earlier allocations move: one
/// build faulted 11,600 more pages than another over a 270-tensor conversion). One block is kept, the
/// largest asked for up to `keptLimit`; a pipeline that finds it taken allocates its own.
final class SlotMemory: @unchecked Sendable {
    static let shared = SlotMemory()
    private let lock = NSLock()
    private var kept: UnsafeMutableRawBufferPointer?

    func take(byteCount: Int) -> UnsafeMutableRawBufferPointer {
        let reused: UnsafeMutableRawBufferPointer? = lock.withLock {
            guard let block = kept, block.count >= byteCount else { return nil }
            kept = nil
            return block
        }
        return reused ?? .allocate(byteCount: byteCount, alignment: 64)
    }

    /// The largest block kept: a conversion's slots are a few megabytes; a row so long that its
    /// slots are not (one row of 2³⁰ values) is given back rather than held for the process's life.
    static let keptLimit = 64 << 20

    func give(_ block: UnsafeMutableRawBufferPointer) {
        let spare: UnsafeMutableRawBufferPointer? = lock.withLock {
            guard block.count <= Self.keptLimit, (kept?.count ?? -1) < block.count else { return block }
            defer { kept = block }
            return kept
        }
        spare?.deallocate()
    }
}
