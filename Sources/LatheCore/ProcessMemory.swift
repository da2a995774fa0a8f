import Foundation

/// The process's memory as the kernel reports it (Linux `/proc/self/status`); nil elsewhere.
public enum ProcessMemory {
    /// The peak resident set size so far (VmHWM), in bytes.
    public static func peakResidentBytes() -> Int? { field("VmHWM:") }

    /// The current resident set size (VmRSS), in bytes.
    public static func residentBytes() -> Int? { field("VmRSS:") }

    private static func field(_ name: String) -> Int? {
        // /proc files report a size of 0, so Foundation's whole-file readers return nothing: read lines.
        guard let file = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard line.hasPrefix(name) else { continue }
            let kilobytes = line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first
                .flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }
}
