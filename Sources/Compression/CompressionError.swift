import Foundation

/// Errors from zstd and archive handling. Messages name the archive and member involved.
public enum CompressionError: Error, Equatable, LocalizedError {
    case zstd(operation: String, reason: String)
    case truncatedFrame
    case sizeLimitExceeded(limit: Int)
    case archive(path: String, reason: String)
    case unsafeMember(archive: String, member: String, reason: String)
    case unsupportedMember(archive: String, member: String, kind: String)
    case unknownArchiveFormat(path: String)

    public var errorDescription: String? {
        switch self {
        case .zstd(let operation, let reason):
            return "zstd \(operation) failed: \(reason)"
        case .truncatedFrame:
            return "zstd data ends inside a frame: the input is truncated"
        case .sizeLimitExceeded(let limit):
            return "zstd data decompresses to more than the allowed \(limit) bytes"
        case .archive(let path, let reason):
            return "\(path): \(reason)"
        case .unsafeMember(let archive, let member, let reason):
            return "\(archive): refusing member '\(member)': \(reason)"
        case .unsupportedMember(let archive, let member, let kind):
            return "\(archive): member '\(member)' is a \(kind); only files, directories and links are extracted"
        case .unknownArchiveFormat(let path):
            return "\(path): not a recognised archive; expected a name ending in .tar, .tar.zst or .zip"
        }
    }
}
