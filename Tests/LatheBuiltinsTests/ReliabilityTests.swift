import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheTestSupport
import LinearAlgebra
import Testing

/// The `lathe` executable `swift build` left beside the tests, run as a separate process.
enum LatheProcess {
    static var binary: URL { Fixtures.packageRoot.appendingPathComponent(".build/debug/lathe") }
    static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: binary.path) }
    static let skipReason = "the lathe executable is not built (.build/debug/lathe): run swift build first"

    /// With `defaultSignals`, the child starts with SIGINT and SIGTERM at their default actions and
    /// unblocked: a test runner may ignore or block them, and both carry across exec (an ignored
    /// one Lathe leaves ignored, as for a background job).
    static func start(
        _ arguments: [String], threads: Int? = nil, defaultSignals: Bool = false,
        output: FileHandle = .nullDevice, errors: FileHandle = .nullDevice
    ) throws -> Process {
        let process = Process()
        if defaultSignals {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments =
                [
                    "python3", "-c",
                    "import os, signal, sys\nfor s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\nsignal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})\nos.execv(sys.argv[1], sys.argv[1:])",
                    binary.path,
                ] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        if let threads { environment["OPENBLAS_NUM_THREADS"] = "\(threads)" }
        process.environment = environment
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        return process
    }

    /// Runs to the end; the exit status and what it printed on stdout and stderr (through files,
    /// so that neither pipe can fill up and stall the child).
    static func capture(_ arguments: [String], threads: Int? = nil) throws -> (
        status: Int32, output: String, errors: String
    ) {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (out, err) = (work.appendingPathComponent("stdout"), work.appendingPathComponent("stderr"))
        for url in [out, err] { try Data().write(to: url) }
        let (outHandle, errHandle) = (try FileHandle(forWritingTo: out), try FileHandle(forWritingTo: err))
        let process = try start(arguments, threads: threads, output: outHandle, errors: errHandle)
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return (
            process.terminationStatus, String(decoding: try Data(contentsOf: out), as: UTF8.self),
            String(decoding: try Data(contentsOf: err), as: UTF8.self)
        )
    }

    /// Runs to the end; the exit status.
    @discardableResult
    static func run(_ arguments: [String], threads: Int? = nil) throws -> Int32 {
        let process = try start(arguments, threads: threads)
        process.waitUntilExit()
        return process.terminationStatus
    }
}

@Suite("Reliability", .serialized, .enabled(if: LatheProcess.isAvailable, Comment(rawValue: LatheProcess.skipReason)))
struct ReliabilityTests {
    @Test("every built-in recipe gives byte-identical outputs across runs and with 1 or 2 threads")
    func determinism() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.safetensors")
        try writeTiny(to: input)
        let text = work.appendingPathComponent("calibration.txt")
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs", "far", "away"]
        try (0..<6000).map { words[($0 * 7 + $0 / 5) % words.count] }.joined(separator: " ")
            .write(to: text, atomically: true, encoding: .utf8)
        for name in RecipeLibrary.builtinNames {
            let recipe = try RecipeLibrary.load(name)
            let format = recipe.outputs.first?.format ?? "safetensors"
            var outputs: [Data] = []
            // A second run with 2 threads for two recipes: enough to catch run-to-run variation, which
            // would show in every recipe that calibrates.
            let runs = ["q4_0", "resq-w4a4kv4"].contains(name) ? [(0, 1), (1, 2), (2, 2)] : [(0, 1), (1, 2)]
            for (run, threads) in runs {
                let output = work.appendingPathComponent("\(name)-\(run).\(format)")
                var arguments = ["convert", input.path, "--recipe", name, "-o", output.path, "--force"]
                if recipe.calibration != nil { arguments += ["--calibration-text", text.path] }
                let status = try LatheProcess.run(arguments, threads: threads)
                #expect(status == 0, "\(name) with \(threads) thread(s) exited with \(status)")
                outputs.append((try? Data(contentsOf: output)) ?? Data())
            }
            #expect(!outputs[0].isEmpty && outputs[0] == outputs[1], "\(name): 1 thread and 2 threads differ")
            if outputs.count == 3 { #expect(outputs[1] == outputs[2], "\(name): two runs with 2 threads differ") }
        }
    }

    /// A model in `work` whose conversion takes long enough to interrupt; its complete F16
    /// conversion, and how long that took.
    func convertibleModel(in work: URL) throws -> (input: URL, f16: Data, duration: TimeInterval) {
        let input = work.appendingPathComponent("model.safetensors")
        try writeTiny(
            config: TinyModel.config(layers: 8, hidden: 512, heads: 8, kvHeads: 2, ffn: 1024, vocab: 512), to: input)
        let reference = work.appendingPathComponent("reference.gguf")
        let started = Date()
        #expect(try LatheProcess.run(["convert", input.path, "-o", reference.path, "--type", "f16"]) == 0)
        return (input, try Data(contentsOf: reference), Date().timeIntervalSince(started))
    }

    @Test("a conversion killed at 20 random points leaves the previous complete file, or the new complete one")
    func killedConversions() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (input, replacement, duration) = try convertibleModel(in: work)
        let destination = work.appendingPathComponent("model.gguf")
        #expect(try LatheProcess.run(["convert", input.path, "-o", destination.path, "--type", "q8_0"]) == 0)
        let previous = try Data(contentsOf: destination)
        var generator = SeededGenerator(seed: 17)
        var outcomes: [String: Int] = [:]
        for _ in 0..<20 {
            let process = try LatheProcess.start([
                "convert", input.path, "-o", destination.path, "--type", "f16", "--force",
            ])
            Thread.sleep(forTimeInterval: Double(generator.next() % 1000) / 1000 * duration * 1.2)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let now = try Data(contentsOf: destination)
            #expect(now == previous || now == replacement, "the destination is partial (\(now.count) bytes)")
            outcomes[now == previous ? "previous" : "replacement", default: 0] += 1
            if now == replacement {
                try previous.write(to: destination)  // start the next round from the previous file again
            }
            // A killed writer leaves its temporary sibling behind; it never shadows the destination.
            var leftTemporary = false
            for name in try FileManager.default.contentsOfDirectory(atPath: work.path) where name.hasSuffix(".tmp") {
                try FileManager.default.removeItem(at: work.appendingPathComponent(name))
                leftTemporary = true
            }
            if leftTemporary && now == previous { outcomes["killed while writing", default: 0] += 1 }
        }
        // The test means something only if some kills landed while the output was being written
        // (the writer spends most of the run writing, so 20 uniform kill times all missing it would
        // be a change in how the conversion runs, not luck).
        #expect(outcomes["killed while writing", default: 0] > 0, "\(outcomes)")
    }

    @Test("a conversion interrupted by SIGINT or SIGTERM leaves no temporary and no partial destination")
    func interruptedConversions() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (input, complete, duration) = try convertibleModel(in: work)
        let destination = work.appendingPathComponent("model.gguf")
        var generator = SeededGenerator(seed: 23)
        var interrupted = 0
        var endings: [String] = []
        for round in 0..<8 {
            try? FileManager.default.removeItem(at: destination)
            let process = try LatheProcess.start(
                ["convert", input.path, "-o", destination.path, "--type", "f16"], defaultSignals: true)
            // Once the temporary output appears (writing has begun), at a random point after it.
            let deadline = Date().addingTimeInterval(10 * duration + 5)
            while process.isRunning, Date() < deadline,
                !(try FileManager.default.contentsOfDirectory(atPath: work.path)).contains(where: {
                    $0.hasSuffix(".tmp")
                })
            {
                Thread.sleep(forTimeInterval: 0.001)
            }
            Thread.sleep(forTimeInterval: Double(generator.next() % 20) / 1000 * duration)
            kill(process.processIdentifier, round % 2 == 0 ? SIGINT : SIGTERM)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { interrupted += 1 }
            endings.append(
                "\(process.terminationReason == .uncaughtSignal ? "signal" : "exit") \(process.terminationStatus)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: work.path).filter {
                $0.hasSuffix(".tmp")
            }
            #expect(leftovers.isEmpty, "round \(round): \(leftovers)")
            if FileManager.default.fileExists(atPath: destination.path) {
                #expect(try Data(contentsOf: destination) == complete, "round \(round): a partial destination")
            }
        }
        #expect(interrupted > 0, "no run was interrupted while it worked: \(endings)")
    }

    @Test("a recipe killed at random points resumes from its checkpoints to the uninterrupted bytes")
    func killedRecipesResume() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("model.safetensors")
        try writeTiny(
            config: TinyModel.config(layers: 6, hidden: 256, heads: 4, kvHeads: 2, ffn: 512, vocab: 512), to: input)
        let recipe = work.appendingPathComponent("recipe.yaml")
        try """
        name: killed
        description: four data-free steps, each checkpointed
        steps:
          - pass: untie-embeddings
          - pass: fuse-norms
          - pass: rotate
            options: {kind: randomized-hadamard, basis: none, seed: 3}
          - pass: quantize-ggml
            options: {type: q4_0}
        """.write(to: recipe, atomically: true, encoding: .utf8)
        let straight = work.appendingPathComponent("straight.gguf")
        let checkpoints = work.appendingPathComponent("checkpoints")
        func arguments(_ output: URL) -> [String] {
            [
                "convert", input.path, "-o", output.path, "--recipe", recipe.path, "--work-dir", checkpoints.path,
                "--resume",
            ]
        }
        let started = Date()
        #expect(try LatheProcess.run(arguments(straight)) == 0)
        let duration = Date().timeIntervalSince(started)
        let reference = try Data(contentsOf: straight)
        var generator = SeededGenerator(seed: 23)
        for round in 0..<6 {
            try? FileManager.default.removeItem(at: checkpoints)
            let output = work.appendingPathComponent("resumed-\(round).gguf")
            let process = try LatheProcess.start(arguments(output))
            Thread.sleep(forTimeInterval: (0.1 + 0.8 * Double(generator.next() % 1000) / 1000) * duration)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let partial = try? Data(contentsOf: output)
            #expect(partial == nil || partial == reference, "round \(round): the output is partial")
            #expect(try LatheProcess.run(arguments(output)) == 0, "round \(round): the resumed run failed")
            #expect(try Data(contentsOf: output) == reference, "round \(round): resuming changed the bytes")
        }
    }
}
