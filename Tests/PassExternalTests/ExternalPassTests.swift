import Foundation
import LatheBuiltins
import LatheCore
import LatheTestSupport
import PassExternal
import Testing

/// The pass on its own; recipes that run a real plugin are in LatheBuiltinsTests.
@Suite("External pass")
struct ExternalPassTests {
    @Test("an external step's options encode as the structure they were decoded from")
    func optionsRoundTrip() throws {
        let text = #"{"command":["sh"],"options":{"a":[1,2.5,"x",null,true],"b":{"c":-3}}}"#
        let decoded = try JSONDecoder().decode(ExternalPass.Options.self, from: Data(text.utf8))
        let encoded = try JSONDecoder().decode(ExternalPass.Options.self, from: try JSONEncoder().encode(decoded))
        #expect(encoded.options?.value == decoded.options?.value)
        #expect(decoded.options?.value["b"]?["c"] == .number("-3"))
        #expect(decoded.options?.value["a"]?.arrayValue?.count == 5)
    }

    @Test("a program nobody allowed is refused; one that fails is one error naming the command")
    func failingPlugin() throws {
        #expect(throws: LatheError.self, "a program nobody allowed is refused") {
            try ExternalPass(options: .init(command: ["lathe-test-never-allowed"], options: nil))
        }
        ExternalPass.allowedPrograms.allow("sh")
        let pass = try ExternalPass(options: .init(command: ["sh", "-c", "echo broken >&2; exit 3"], options: nil))
        #expect {
            try pass.plan(TinyModel.graph())
        } throws: { error in
            let text = (error as? LatheError)?.errorDescription ?? ""
            return text.contains("exited with status 3: broken") && text.contains("sh -c")
        }
    }

    @Test("tensors travel through the registry's safetensors format: without a registry, an error saying so")
    func needsRegistry() throws {
        ExternalPass.allowedPrograms.allow("sh")
        let reply = #"{"changes":[{"name":"model.norm.weight"}]}"#
        let pass = try ExternalPass(
            options: .init(command: ["sh", "-c", "cat >/dev/null; echo '\(reply)'"], options: nil))
        var graph = try TinyModel.graph()
        #expect(try pass.plan(graph).changedTensors == ["model.norm.weight"])
        var context = PassContext()
        #expect(
            throws: LatheError.missingField(
                "registry", in: "the pass context (pass 'external' exchanges tensors as safetensors)")
        ) {
            try pass.apply(&graph, context: &context)
        }
        // With one, the program is asked to apply (it writes no output file, which is named).
        context.registry = LatheBuiltins.registry
        #expect {
            try pass.apply(&graph, context: &context)
        } throws: { error in
            "\(error)".contains("output.safetensors")
        }
    }
}
