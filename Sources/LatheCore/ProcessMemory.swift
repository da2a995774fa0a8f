import Foundation

/// The process's memory as the kernel reports it (Linux `/proc/self/status`); nil elsewhere.
public enum ProcessMemory {
    /// The peak resident set size so far (VmHWM), in bytes.
    public static func peakResidentBytes() -> Int? { field("VmHWM:") }

    /// The current resident set size (VmRSS), in bytes.
    public static func residentBytes() -> Int? { field("VmRSS:") }

    private static func field(_ name: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            let kilobytes = line.dropFirst(name.count).split(separator: " ").first.flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }
}
