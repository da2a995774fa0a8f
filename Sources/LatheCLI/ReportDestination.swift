import Foundation
import LatheCore

/// Where an HTML report goes: never over one of the models it reports on, and over an existing
/// file only with --force (the report is written last, after minutes of work, so this is checked
/// first).
enum ReportDestination {
    static func check(_ path: String, force: Bool, inputs: [String]) throws {
        let destination = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath()
        for input in inputs
        where URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath() == destination {
            throw LatheError.fileAccess(path: path, reason: "is one of the models; name another file for --report")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: destination.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw LatheError.fileAccess(path: path, reason: "is a directory; --report names the HTML file")
        }
        // What the report's own atomic write would refuse, found now.
        try AtomicOutput.check(URL(fileURLWithPath: path), overwrite: force)
    }
}
