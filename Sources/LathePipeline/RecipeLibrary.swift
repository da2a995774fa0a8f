import Foundation
import LatheCore

/// Built-in recipes (shipped with the package) and recipe files, addressed by name or path.
public enum RecipeLibrary {
    /// The directory of built-in recipes.
    static var directory: URL? { Bundle.module.url(forResource: "Recipes", withExtension: nil) }

    /// Names of the built-in recipes.
    public static var builtinNames: [String] {
        guard let directory, let files = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
            return []
        }
        return files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// A recipe by built-in name, or from a YAML/JSON file.
    public static func load(_ reference: String, including chain: [String] = []) throws -> Recipe {
        guard !chain.contains(reference) else {
            throw PipelineError(
                recipe: reference, path: "include",
                problem: "includes itself (\((chain + [reference]).joined(separator: " → ")))")
        }
        let url: URL
        if FileManager.default.fileExists(atPath: reference) {
            url = URL(fileURLWithPath: reference)
        } else if let directory,
            FileManager.default.fileExists(atPath: directory.appendingPathComponent("\(reference).yaml").path)
        {
            url = directory.appendingPathComponent("\(reference).yaml")
        } else {
            throw PipelineError(
                recipe: reference, path: "",
                problem: "no such recipe file or built-in recipe (built-in: \(builtinNames.joined(separator: ", ")))")
        }
        let source = url.deletingLastPathComponent() == directory ? "builtin:\(reference)" : url.path
        let text: String?
        do { text = try MappedFile.text(url) } catch {
            throw PipelineError(recipe: source, path: "", problem: "cannot read the file")
        }
        guard let text else {
            throw PipelineError(recipe: source, path: "", problem: "not valid UTF-8")
        }
        return try Recipe.parse(text, source: source) { try load($0, including: chain + [reference]) }
    }
}
