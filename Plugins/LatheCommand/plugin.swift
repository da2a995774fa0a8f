import Foundation
import PackagePlugin

/// `swift package lathe …`: a thin adapter that runs the `lathe` tool with the given arguments.
/// All parsing, validation and work live in the tool.
@main
struct LatheCommandPlugin: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        let tool = try context.tool(named: "lathe")
        let process = Process()
        process.executableURL = tool.url
        process.arguments = arguments
        process.currentDirectoryURL = context.package.directoryURL
        try process.run()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            // For a process ended by a signal, the status is the signal's number.
            let how =
                process.terminationReason == .exit
                ? "failed with status \(process.terminationStatus)"
                : "was killed by signal \(process.terminationStatus)"
            Diagnostics.error("lathe \(arguments.first ?? "") \(how)")
            throw PluginFailure(status: process.terminationStatus)
        }
    }
}

struct PluginFailure: Error, CustomStringConvertible {
    let status: Int32
    var description: String { "the lathe tool exited with status \(status)" }
}
