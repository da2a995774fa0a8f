import CKernels
import Foundation
import Synchronization

/// Persistent workers for the session's parallel loops. Decoding one token runs a few hundred
/// short parallel regions; waking dispatch threads for each costs tens of microseconds, about as
/// much as the work. These workers spin briefly on a generation counter between regions and only
/// then sleep, as BLAS libraries' own threads do.
final class WorkerPool: Sendable {
    /// Threads including the caller.
    let threads: Int
    private let state: State

    init(threads: Int) {
        self.threads = max(1, threads)
        state = State()
        for _ in 1..<self.threads {
            let state = state
            let thread = Thread { state.work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit { state.stop() }

    /// Runs `body(i)` for every i in 0..<count across the workers and the caller; returns when all
    /// are done. Not reentrant: one region at a time.
    func run(_ count: Int, _ body: (Int) -> Void) {
        guard threads > 1, count > 1 else {
            for i in 0..<count { body(i) }
            return
        }
        state.run(count, workers: threads - 1, body)
    }

    /// Runs `body` over contiguous ranges of `0..<count`, one per thread (a single range when not
    /// `parallel`: too little work to share).
    func forEachRange(_ count: Int, parallel: Bool, _ body: (Range<Int>) -> Void) {
        let workers = parallel ? threads : 1
        let chunk = (count + workers - 1) / workers
        run(workers) { worker in
            let range = (worker * chunk)..<min(count, (worker + 1) * chunk)
            if !range.isEmpty { body(range) }
        }
    }

    /// What the workers share; they hold it, not the pool, so the pool can go away first.
    private final class State: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let nextIndex = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let condition = NSCondition()
        // Written by the caller before it publishes a generation, read by workers after they see it.
        var task: ((Int) -> Void)?
        var taskCount = 0
        /// Pause-spins before sleeping: about a millisecond, longer than the serial stretches
        /// between the regions of one decoded token.
        let spinLimit = 100_000

        func run(_ count: Int, workers: Int, _ body: (Int) -> Void) {
            withoutActuallyEscaping(body) { body in
                task = body
                taskCount = count
                nextIndex.store(0, ordering: .relaxed)
                finished.store(0, ordering: .relaxed)
                publish()
                drain(body, count)
                while finished.load(ordering: .acquiring) < workers { lk_pause() }
                task = nil
            }
        }

        func stop() {
            stopping.store(true, ordering: .releasing)
            publish()
        }

        private func publish() {
            generation.add(1, ordering: .releasing)
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }

        private func drain(_ body: (Int) -> Void, _ count: Int) {
            while true {
                let index = nextIndex.add(1, ordering: .relaxed).oldValue
                guard index < count else { return }
                body(index)
            }
        }

        func work() {
            var seen = 0
            while true {
                var spins = 0
                while generation.load(ordering: .acquiring) == seen {
                    lk_pause()
                    spins += 1
                    if spins > spinLimit {
                        condition.lock()
                        while generation.load(ordering: .acquiring) == seen { condition.wait() }
                        condition.unlock()
                    }
                }
                seen = generation.load(ordering: .acquiring)
                if stopping.load(ordering: .acquiring) { return }
                if let task { drain(task, taskCount) }
                finished.add(1, ordering: .releasing)
            }
        }
    }
}
