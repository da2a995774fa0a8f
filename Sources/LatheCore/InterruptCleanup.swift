import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Temporaries that must not outlive an interrupted run: an output being written beside its
/// destination, an archive extracted to scratch. Once something is registered, SIGINT, SIGTERM and
/// SIGHUP remove every registered path and then end the process as the signal would have. In a
/// program that asks for it (`handleCrashes()`: the `lathe` command does), a crash removes them too
/// before the crash report (`InterruptCleanup+Faults.swift`). (SIGKILL cannot be caught:
/// after one, the hidden `.NAME.TOKEN.tmp` beside the destination remains, never a partial
/// destination.)
public enum InterruptCleanup {
    private static let paths = Mutex<Set<String>>([])
    private static let installed = Atomic<Bool>(false)

    public static func register(_ url: URL) {
        installIfNeeded()
        paths.withLock { _ = $0.insert(url.path) }
    }

    public static func unregister(_ url: URL) {
        paths.withLock { _ = $0.remove(url.path) }
    }

    /// The paths registered now (for tests).
    public static var registered: Set<String> { paths.withLock { $0 } }

    /// The handler only writes the signal's number to a pipe (all a signal handler may safely do);
    /// a thread waiting on the pipe removes the paths with the file system's full API, then restores
    /// the default action and raises the signal again.
    /// A crash's handler runs on the crashing thread and waits on a second pipe until the thread has
    /// removed the paths (`faultBit` marks its byte), then lets the crash go on.
    static func installIfNeeded() {
        _ = pipes
        guard installed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        var ends: [Int32] = [0, 0]
        var doneEnds: [Int32] = [0, 0]
        // Close-on-exec: processes Lathe starts (external passes) must not hold the pipes.
        guard pipe(&ends) == 0, pipe(&doneEnds) == 0 else { return }
        for end in ends + doneEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        pipes[0] = ends[1]
        pipes[1] = doneEnds[0]
        let reader = ends[0]
        let done = doneEnds[1]
        Thread.detachNewThread {
            while true {
                var byte: UInt8 = 0
                var count: Int
                repeat { count = read(reader, &byte, 1) } while count < 0 && errno == EINTR
                guard count == 1 else { return }
                for path in paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
                if byte & faultBit != 0 {
                    _ = write(done, &byte, 1)
                    continue
                }
                signal(Int32(byte), SIG_DFL)
                kill(getpid(), Int32(byte))
                return
            }
        }
        for number in [SIGINT, SIGTERM, SIGHUP] {
            var current = sigaction()
            sigaction(number, nil, &current)
            // A signal the process was started with ignored (nohup, a background job) stays ignored.
            if unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
                == unsafeBitCast(SIG_IGN, to: Int.self)
            {
                continue
            }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(InterruptCleanup.pipes[0], &byte, 1)
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(number, &action, nil)
        }
    }

    /// The request pipe's writing end, then the reading end on which a crash's handler waits for
    /// the paths to be removed: set once, before any handler is installed. A pointer, not two static
    /// variables, so that a handler reads them without the runtime's access checks.
    nonisolated(unsafe) static let pipes: UnsafeMutablePointer<Int32> = {
        let pipes = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
        pipes.initialize(repeating: -1, count: 2)
        return pipes
    }()
    /// Set in the byte a crash's handler writes (signal numbers are below 128).
    static let faultBit: UInt8 = 0x80
}
