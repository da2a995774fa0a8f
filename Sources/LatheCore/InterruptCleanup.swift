import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Temporaries that must not outlive an interrupted run: an output being written beside its
/// destination, an archive extracted to scratch. Once something is registered, SIGINT, SIGTERM and
/// SIGHUP remove every registered path and then end the process as the signal would have. (SIGKILL
/// cannot be caught: after one, the hidden `.NAME.TOKEN.tmp` beside the destination remains, never
/// a partial destination.)
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
    private static func installIfNeeded() {
        guard installed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        var ends: [Int32] = [0, 0]
        // Close-on-exec: processes Lathe starts (external passes) must not hold the pipe.
        guard pipe(&ends) == 0 else { return }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        signalPipe = ends[1]
        let reader = ends[0]
        Thread.detachNewThread {
            var number: UInt8 = 0
            var count: Int
            repeat { count = read(reader, &number, 1) } while count < 0 && errno == EINTR
            guard count == 1 else { return }
            for path in paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
            signal(Int32(number), SIG_DFL)
            kill(getpid(), Int32(number))
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
                _ = write(InterruptCleanup.signalPipe, &byte, 1)
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(number, &action, nil)
        }
    }

    /// The pipe's writing end, read by the handler (set once, before any handler is installed).
    private nonisolated(unsafe) static var signalPipe: Int32 = -1
}
