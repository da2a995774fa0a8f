import Foundation
import FuzzSupport
import LatheBuiltins
import LatheCore
import LathePipeline

/// The model recipes are planned against (headers only: planning reads no tensor data).
let model: ModelGraph = {
    do { return try SeedModel.graph() } catch { fatalError("fuzz-recipe: \(error)") }
}()

/// One recipe file per input (YAML or JSON, includes of built-in recipes allowed): parsed, then every
/// step's options decoded by its pass and the whole recipe planned on the seed model. Seeds: every
/// built-in recipe, which `make fuzz` copies beside the corpus.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecipe(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.withFile(data, size, name: "recipe.yaml") { url in
        guard let recipe = try? RecipeLibrary.load(url.path) else { return }
        _ = try? Pipeline.plan(recipe, for: model, registry: LatheBuiltins.registry)
    }
    return 0
}
