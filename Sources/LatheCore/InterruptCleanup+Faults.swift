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
/// raises SIGBUS at the first page past its new end. That one ends with a one-line error naming
/// the file (`MappedRegions`) and exit status 1.
extension InterruptCleanup {
    static let faultSignals = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT]

    /// The actions the fault handlers replaced, indexed by signal number (allocated once, before any
    /// fault handler is installed, and read by the handlers).
    nonisolated(unsafe) static var previousActions: UnsafeMutablePointer<sigaction> = {
        let actions = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
        actions.initialize(repeating: sigaction(), count: 65)
        return actions
    }()

    /// Set by the first crashing thread (atomics are lock-free, safe in a handler).
    static let faultHandled = Atomic<Bool>(false)

    static func installFaultHandlers() {
        let previous = previousActions
        _ = MappedRegions.table
        for number in faultSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { number, info, _ in
                InterruptCleanup.handleFault(number, address: info?.pointee._sifields._sigfault.si_addr)
            }
            action.sa_flags = SA_SIGINFO | SA_ONSTACK
            sigemptyset(&action.sa_mask)
            sigaction(number, &action, previous + Int(number))
        }
    }

    /// Runs on the crashing thread: only async-signal-safe calls (write, poll, sigaction, raise, _exit).
    static func handleFault(_ number: Int32, address: UnsafeMutableRawPointer?) {
        // Workers reading one truncated file fault together: the first handles the crash, the
        // others wait for it to end the process (their messages would interleave).
        guard faultHandled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else {
            while true { pause() }
        }
        var byte = UInt8(truncatingIfNeeded: number) | faultBit
        if write(signalPipe, &byte, 1) == 1 {
            var waiting = pollfd(fd: donePipe, events: Int16(POLLIN), revents: 0)
            _ = poll(&waiting, 1, 2000)
        }
        if number == SIGBUS, let address, let path = MappedRegions.path(containing: address) {
            let before: StaticString = "Error: "
            let after: StaticString = ": the file was truncated or replaced while it was being read\n"
            _ = write(2, before.utf8Start, before.utf8CodeUnitCount)
            _ = write(2, path, strlen(path))
            _ = write(2, after.utf8Start, after.utf8CodeUnitCount)
            _exit(1)
        }
        sigaction(number, previousActions + Int(number), nil)
        // Delivered when this handler returns (the signal is blocked while it runs).
        raise(number)
    }
}

/// The address ranges of the mapped files and their paths, for the SIGBUS message. A fixed table
/// of C strings, written under a lock and read by the handler without one (a handler may take no
/// lock); a file mapped while the table is full is simply not named. A path is never freed, so the
/// handler never reads freed memory (a few bytes per file mapped).
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
        InterruptCleanup.installIfNeeded()
        let start = UInt(bitPattern: base)
        lock.withLock {
            guard let slot = (0..<capacity).first(where: { table[$0].path == nil }) else { return }
            table[slot].start = start
            table[slot].end = start + UInt(size)
            table[slot].path = strdup(path)
        }
    }

    static func remove(_ base: UnsafeRawPointer) {
        let start = UInt(bitPattern: base)
        lock.withLock {
            guard let slot = (0..<capacity).first(where: { table[$0].path != nil && table[$0].start == start })
            else { return }
            table[slot].path = nil
        }
    }

    /// The mapped file holding `address`, read without a lock from a signal handler.
    static func path(containing address: UnsafeMutableRawPointer) -> UnsafePointer<CChar>? {
        let value = UInt(bitPattern: address)
        for slot in 0..<capacity {
            let region = table[slot]
            if let path = region.path, region.start <= value, value < region.end { return UnsafePointer(path) }
        }
        return nil
    }
}
