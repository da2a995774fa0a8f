import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheTestSupport
import Testing

@testable import LatheCLI

/// Compares `text` with a checked-in snapshot; `LATHE_UPDATE_SNAPSHOTS=1` rewrites it instead.
func expectSnapshot(_ text: String, named name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = Fixtures.packageRoot.appendingPathComponent("Tests/LatheCLITests/Snapshots/\(name).txt")
    if ProcessInfo.processInfo.environment["LATHE_UPDATE_SNAPSHOTS"] == "1" {
        try text.write(to: url, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOf: url, encoding: .utf8)
    #expect(
        text == expected, "\(name) changed; if intended, rerun with LATHE_UPDATE_SNAPSHOTS=1",
        sourceLocation: sourceLocation)
}

@Suite("CLI")
struct CLITests {
    @Test("the root help text is stable")
    func rootHelp() throws {
        try expectSnapshot(LatheCommand.helpMessage(columns: 100), named: "help")
    }

    @Test(
        "every subcommand's help text is stable",
        arguments: [
            "inspect", "convert", "diff", "check", "plan", "recipes", "run", "eval", "verify", "calibrate", "plugins",
        ])
    func subcommandHelp(name: String) throws {
        let command = try #require(LatheCommand.configuration.subcommands.first { $0._commandName == name })
        try expectSnapshot(command.helpMessage(columns: 100), named: "help-\(name)")
    }

    @Test("table columns are padded by terminal width: CJK counts two, a combining accent none")
    func terminalColumns() {
        #expect("abc".terminalWidth == 3)
        #expect("e\u{301}t\u{E9}".terminalWidth == 3)  // decomposed and precomposed é
        #expect("層.weight".terminalWidth == 9)
        let rows = ["model.layers.0.weight", "模型.层.0.weight", "mode\u{301}l.x"].map { $0.padded(toColumns: 24) + "|" }
        #expect(rows.allSatisfy { $0.terminalWidth == 25 }, "\(rows)")
        #expect(rows[1] == "模型.层.0.weight" + String(repeating: " ", count: 8) + "|")
    }

    @Test("--version prints the version and exits 0")
    func version() {
        do {
            _ = try LatheCommand.parseAsRoot(["--version"])
            Issue.record("--version parsed as a command")
        } catch {
            #expect(LatheCommand.fullMessage(for: error) == "0.1.0")
            #expect(LatheCommand.exitCode(for: error) == .success)
        }
    }

    @Test("plugins renders the registry as a table and as JSON")
    func plugins() throws {
        let table = Plugins.render(LatheBuiltins.registry.entries, json: false)
        #expect(table.hasPrefix("Format readers:"))
        for entry in LatheBuiltins.registry.entries { #expect(table.contains(entry.id)) }
        let json = Plugins.render(LatheBuiltins.registry.entries, json: true)
        let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: String]]
        #expect(decoded?.count == LatheBuiltins.registry.entries.count)
    }

    @Test("plan's llama.cpp line names the transforms the input already carries, not only the recipe's")
    func planNamesTheInputsTransforms() throws {
        let recipe = try RecipeLibrary.load("q4_0")
        var graph = try TinyModel.graph()
        #expect(try Plan.llamaCppNote(recipe, input: graph) == "every transform is fused into the weights")
        try OnlineTransforms(downProjectionHadamard: 64, queryKeyRotation: true).store(in: &graph.metadata)
        let note = try Plan.llamaCppNote(recipe, input: graph)
        #expect(note.hasPrefix("not representable: U_D"), "\(note)")
        #expect(note.contains("U_C, the online q/k rotation after RoPE (in the input)"), "\(note)")
        // What convert --for-llama-cpp refuses, plan reports.
        #expect(
            throws: LatheError.self,
            performing: {
                _ = try Convert.prepareGGUF(graph, forLlamaCpp: true, diagnostics: .silent)
            })
        let adding = try Plan.llamaCppNote(RecipeLibrary.load("resq-w4a4kv4"), input: try TinyModel.graph())
        #expect(adding.contains("U_D (online Hadamard before down_proj)") && adding.contains("KV-cache"), "\(adding)")
    }

    @Test("a missing recipe is one line that lists the built-in recipes")
    func missingRecipe() throws {
        var command = try LatheCommand.parseAsRoot(["plan", "recipe.json", "model.gguf"])
        #expect {
            try command.run()
        } throws: { error in
            let text = LatheCommand.message(for: error)
            return text.contains("recipe.json: no such recipe file or built-in recipe") && text.contains("q4_0")
                && !text.contains("\n")
        }
    }
}
