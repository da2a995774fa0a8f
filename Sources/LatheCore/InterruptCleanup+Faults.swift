import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a crash does with the registered temporaries. A failed allocation (SIGABRT), a trap or a
/// fault used to leave the hidden output temporary behind, with the whole output's space reserved
/// on disk. The handler asks the cleanup thread to remove the paths, waits for it (two seconds at
/// most: a crash inside the allocator may hold a lock the thread needs), then hands the signal to
/// the handler installed before it (Swift's crash report) or to the default action.
///
/// One crash is the input's fault, not Lathe's: a memory-mapped input truncated while it is read
/// (or a page the disk cannot read) raises SIGBUS. That one ends with a one-line error naming the
/// file (`MappedRegions`) and exit status 1.
///
/// Opt-in (`handleCrashes()`), for the program that owns the process: a library must not take over
/// a host's crash handling, nor a fuzzer's, which must see the crash itself.
extension InterruptCleanup {
    /// Installs the crash handlers (once). The `lathe` command calls it first thing.
    public static func handleCrashes() {
        installIfNeeded()
        guard
            crashHandlersInstalled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
                .exchanged
        else { return }
        // Everything the handler reads is initialized now, not lazily inside it.
        _ = (faultHandled.load(ordering: .relaxed), faultBit, MappedRegions.table, MappedRegions.capacity)
        let previous = previousActions
        for number in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT] {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { number, info, _ in
                InterruptCleanup.handleFault(
                    number, code: info?.pointee.si_code ?? 0, address: info?.pointee._sifields._sigfault.si_addr)
            }
            action.sa_flags = SA_SIGINFO | SA_ONSTACK
            // An interrupt during the wait below must not end the process before the cleanup.
            sigemptyset(&action.sa_mask)
            for blocked in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&action.sa_mask, blocked) }
            sigaction(number, &action, previous + Int(number))
        }
    }

    private static let crashHandlersInstalled = Atomic<Bool>(false)

    /// The actions the crash handlers replaced, indexed by signal number.
    nonisolated(unsafe) static let previousActions: UnsafeMutablePointer<sigaction> = {
        let actions = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
        actions.initialize(repeating: sigaction(), count: 65)
        return actions
    }()

    /// Set by the first crashing thread (atomics are lock-free, safe in a handler).
    static let faultHandled = Atomic<Bool>(false)

    /// Runs on the crashing thread: only async-signal-safe calls (write, poll, clock_gettime,
    /// sigaction, raise, _exit, pause).
    static func handleFault(_ number: Int32, code: Int32, address: UnsafeMutableRawPointer?) {
        // Workers reading one truncated file fault together: the first handles the crash, the
        // others wait for it to end the process (their messages would interleave).
        guard faultHandled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else {
            while true { pause() }
        }
        var byte = UInt8(truncatingIfNeeded: number) | faultBit
        if write(pipes[0], &byte, 1) == 1 { waitForCleanup(milliseconds: 2000) }
        let addressError: Int32 = 2  // BUS_ADRERR: a page of a mapping with nothing behind it
        if number == SIGBUS, code == addressError, let address, let path = MappedRegions.path(containing: address) {
            let before: StaticString = "Error: "
            let after: StaticString = ": the file was truncated, or could not be read, while Lathe was reading it\n"
            _ = write(2, before.utf8Start, before.utf8CodeUnitCount)
            _ = write(2, path, strlen(path))
            _ = write(2, after.utf8Start, after.utf8CodeUnitCount)
            _exit(1)
        }
        sigaction(number, previousActions + Int(number), nil)
        // A fault the instruction raised happens again when this handler returns, now with the
        // previous handler and the original details (address, code); a signal sent by the process
        // itself (abort, a trap instruction that does not repeat) is sent again, delivered then.
        let repeats = number == SIGSEGV || number == SIGBUS || number == SIGILL || number == SIGFPE
        if !(repeats && code > 0) { raise(number) }
    }

    /// Waits for the cleanup thread's reply, through interruptions, until `milliseconds` have passed.
    private static func waitForCleanup(milliseconds: Int) {
        func now() -> Int {
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC, &time)
            return time.tv_sec * 1000 + time.tv_nsec / 1_000_000
        }
        let deadline = now() + milliseconds
        while true {
            var waiting = pollfd(fd: pipes[1], events: Int16(POLLIN), revents: 0)
            let left = deadline - now()
            guard left > 0, poll(&waiting, 1, Int32(left)) < 0, errno == EINTR else { return }
        }
    }
}

/// The address ranges of the mapped files and their paths, for the SIGBUS message. A fixed table
/// of C strings, written under a lock and read by the handler without one (a handler may take no
/// lock): a path is published after its range and withdrawn before it, and never freed, so the
/// handler never reads freed memory (a few bytes per file mapped). A file mapped while the table is
/// full is simply not named.
enum MappedRegions {
    struct Region {
        var start: UInt
        var end: UInt
        var path: UnsafeMutablePointer<CChar>?
    }
    static let capacity = 4096
    nonisolated(unsafe) static let table: UnsafeMutablePointer<Region> = {
        let table = UnsafeMutablePointer<Region>.allocate(capacity: capacity)
        table.initialize(repeating: Region(start: 0, end: 0, path: nil), count: capacity)
        return table
    }()
    private static let lock = NSLock()

    static func add(_ base: UnsafeRawPointer, size: Int, path: String) {
        let start = UInt(bitPattern: base)
        lock.withLock {
            guard let slot = (0..<capacity).first(where: { table[$0].path == nil }) else { return }
            table[slot].start = start
            table[slot].end = start + UInt(size)
            atomicMemoryFence(ordering: .releasing)
            table[slot].path = strdup(path)
        }
    }

    static func remove(_ base: UnsafeRawPointer) {
        let start = UInt(bitPattern: base)
        lock.withLock {
            guard let slot = (0..<capacity).first(where: { table[$0].path != nil && table[$0].start == start })
            else { return }
            table[slot].path = nil
            atomicMemoryFence(ordering: .releasing)
            (table[slot].start, table[slot].end) = (0, 0)
        }
    }

    /// The mapped file holding `address`, read without a lock from a signal handler.
    static func path(containing address: UnsafeMutableRawPointer) -> UnsafePointer<CChar>? {
        let value = UInt(bitPattern: address)
        for slot in 0..<capacity {
            guard let path = table[slot].path else { continue }
            atomicMemoryFence(ordering: .acquiring)
            if table[slot].start <= value, value < table[slot].end { return UnsafePointer(path) }
        }
        return nil
    }
}
