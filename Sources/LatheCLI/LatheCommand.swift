import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LinearAlgebra

/// The root of the `lathe` command tree.
/// Synchronous on purpose: no command awaits anything, and an async root would run every command on
/// the concurrency runtime's worker threads, whose idle spinning took CPU from the work on two cores.
public struct LatheCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lathe",
        abstract: "Convert, quantize and verify large language model checkpoints.",
        discussion: """
            Lathe reads and writes safetensors, GGUF and its own packed mixed-precision format, chains \
            quantization passes (the ResQ method) into a pipeline, and checks the result against the \
            original model with a bundled reference runtime.

            A typical session:
              lathe inspect model.gguf
              lathe convert model.gguf -o model.safetensors
              lathe plan q4_0 model.gguf
              lathe convert model.gguf -o model-q4_0.gguf --recipe q4_0
              lathe verify model.gguf model-q4_0.gguf --text wiki.test.raw
              lathe run model.gguf --chat -p "Hello"

            Set OPENBLAS_NUM_THREADS to bound the BLAS worker threads.
            """,
        version: LatheVersion.current,
        subcommands: [
            Inspect.self, Convert.self, Diff.self, Check.self, Plan.self, Recipes.self, Calibrate.self, Run.self,
            Eval.self, Verify.self, Plugins.self,
        ]
    )

    public init() {}
}

/// Parses the process arguments and runs the command (the executable's whole job).
public func main() {
    BLAS.stopIdleThreads()
    // Past a file-size limit (ulimit -f) the kernel would end the process with SIGXFSZ, leaving the
    // output's temporary; ignored, the write fails with EFBIG and the output is cleaned up as usual.
    signal(SIGXFSZ, SIG_IGN)
    InterruptCleanup.handleCrashes()
    let command: any ParsableCommand
    do { command = try LatheCommand.parseAsRoot() } catch { LatheCommand.exit(withError: error) }
    do {
        var running = command
        try running.run()
    } catch let error
        where error is ExitCode || error is CleanExit || error is ValidationError
        || LatheCommand.exitCode(for: error) == .success
    {
        // The last case is `lathe help …` and `lathe COMMAND --help`: the parser's help command
        // throws its own (internal) error type to print the help on standard output.
        LatheCommand.exit(withError: error)
    } catch {
        // Lathe's own errors: one line, whatever the file they quote holds (names with line breaks
        // or escape sequences, a YAML parser's multi-line context), and not a page long.
        printError("Error: \(oneLine(errorMessage(error)))")
        Foundation.exit(LatheCommand.exitCode(for: error).rawValue)
    }
}

/// Runs the CLI with a registry extended by an in-process plugin (see Examples/InProcessPlugin).
public func main(registry: Registry) {
    LatheEnvironment.install(registry)
    main()
}

/// The registry the commands use: the built-ins, or what a plugin program installed before parsing.
public enum LatheEnvironment {
    // Written once, before any command runs, and only read afterwards.
    public private(set) nonisolated(unsafe) static var registry: Registry = LatheBuiltins.registry

    static func install(_ registry: Registry) { self.registry = registry }
}
