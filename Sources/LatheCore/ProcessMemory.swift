import Foundation

/// The process's memory as the kernel reports it (Linux `/proc/self/status`); nil elsewhere.
public enum ProcessMemory {
    /// The peak resident set size so far (VmHWM), in bytes.
    public static func peakResidentBytes() -> Int? { field("VmHWM:") }

    /// The current resident set size (VmRSS), in bytes.
    public static func residentBytes() -> Int? { field("VmRSS:") }

    private static func field(_ name: String) -> Int? {
        // /proc files report a size of 0, so read until the end instead of trusting it.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/status") else { return nil }
        defer { try? handle.close() }
        let status = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            let kilobytes = line.dropFirst(name.count).split(separator: " ").first.flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }
}
