import Foundation
import LatheCore
import Yams

/// A conversion written as data: steps (pass id + options), outputs, and optional calibration and
/// evaluation settings. YAML or JSON; a recipe may `include` another, drop its steps by pass id
/// (`without`) and override the options of its steps by pass id.
public struct Recipe: Sendable {
    public struct Step: Sendable {
        public var pass: String
        public var options: JSONValue
        /// The included recipe the step comes from (nil: this one), for messages.
        public var origin: String? = nil
    }

    public struct Output: Sendable {
        public var format: String
        public var options: [String: String]

        public init(format: String, options: [String: String] = [:]) {
            self.format = format
            self.options = options
        }
    }

    public struct Evaluation: Sendable {
        public var text: String
        public var ctx: Int
        public var chunks: Int?
    }

    public struct Calibration: Sendable {
        /// The calibration text (the validation split, never the evaluation text).
        public var file: String
        public var windows: Int
        public var length: Int
        public var seed: UInt64
        /// Statistics from an earlier `lathe calibrate` (or another engine) to reuse instead of collecting.
        public var statistics: String?
    }

    public var name: String
    public var description: String
    /// Where the recipe came from (a path or `builtin:NAME`), for messages.
    public var source: String
    public var steps: [Step]
    public var outputs: [Output]
    public var evaluation: Evaluation?
    public var calibration: Calibration?
    /// The model to read when the command line names none.
    public var input: String?
    /// Built-in recipes fail on any fallback unless told otherwise.
    public var strict: Bool

    /// A YAML error as one line, "line L, column C: problem (context)": the parser's own description
    /// adds the offending line and a caret under it.
    static func summary(of error: any Error) -> String {
        switch error as? YamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)" + (context.map { " (\($0.text))" } ?? "")
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicate keys \(duplicates.sorted().joined(separator: ", "))"
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    /// Parses a recipe; `resolve` loads included recipes by name or path.
    public static func parse(_ text: String, source: String, resolve: (String) throws -> Recipe) throws -> Recipe {
        let json: JSONValue
        do {
            json = try JSONValue(yaml: Yams.compose(yaml: text))
        } catch let error as PipelineError {
            // The node walk does not know the recipe's name.
            throw PipelineError(recipe: source, path: error.path, problem: error.problem)
        } catch {
            throw PipelineError(recipe: source, path: "", problem: "not valid YAML or JSON: \(Self.summary(of: error))")
        }
        guard case .object = json else { throw PipelineError(recipe: source, path: "", problem: "must be a mapping") }
        try Self.requireKnownKeys(json, Self.topLevelKeys, at: "", in: source)
        func string(_ key: String) throws -> String? {
            guard let value = json[key] else { return nil }
            guard let text = value.stringValue else {
                throw PipelineError(recipe: source, path: key, problem: "must be a string")
            }
            return text
        }
        var recipe: Recipe
        if let include = try string("include") {
            do {
                recipe = try resolve(include)
            } catch let error as PipelineError where error.recipe != include || !error.path.isEmpty {
                // An error inside the included recipe names that recipe and the place in it.
                throw error
            } catch {
                // One about finding it names this recipe's include key.
                throw PipelineError(
                    recipe: source, path: "include",
                    problem: (error as? any LocalizedError)?.errorDescription ?? "\(error)")
            }
            for index in recipe.steps.indices where recipe.steps[index].origin == nil {
                recipe.steps[index].origin = recipe.source
            }
            recipe.source = source
        } else {
            recipe = Recipe(name: "", description: "", source: source, steps: [], outputs: [], strict: true)
        }
        recipe.name = try string("name") ?? recipe.name
        recipe.input = try string("input") ?? recipe.input
        recipe.description = try string("description") ?? recipe.description
        if let removed = json["without"] {
            guard let list = removed.arrayValue?.compactMap(\.stringValue), list.count == removed.arrayValue?.count
            else {
                throw PipelineError(recipe: source, path: "without", problem: "must be a list of pass ids")
            }
            for passID in list {
                guard recipe.steps.contains(where: { $0.pass == passID }) else {
                    throw PipelineError(
                        recipe: source, path: "without", problem: "the included recipe has no '\(passID)' step")
                }
                recipe.steps.removeAll { $0.pass == passID }
            }
        }
        if let overrides = json["options"] {
            guard let entries = overrides.objectValue else {
                throw PipelineError(recipe: source, path: "options", problem: "must map pass ids to options")
            }
            for (passID, options) in entries {
                let matching = recipe.steps.indices.filter { recipe.steps[$0].pass == passID }
                guard !matching.isEmpty else {
                    throw PipelineError(
                        recipe: source, path: "options.\(passID)",
                        problem: "the included recipe has no '\(passID)' step")
                }
                for index in matching { recipe.steps[index].options = recipe.steps[index].options.merging(options) }
            }
        }
        if let steps = json["steps"] {
            guard let list = steps.arrayValue else {
                throw PipelineError(recipe: source, path: "steps", problem: "must be a list")
            }
            for (index, step) in list.enumerated() {
                try Self.requireKnownKeys(
                    step, ["pass", "options"], at: "steps[\(recipe.steps.count + index)]", in: source)
                guard let pass = step["pass"]?.stringValue else {
                    throw PipelineError(
                        recipe: source, path: "steps[\(recipe.steps.count + index)].pass", problem: "missing pass id")
                }
                recipe.steps.append(Step(pass: pass, options: step["options"] ?? .object([])))
            }
        }
        if let outputs = json["outputs"] {
            guard let list = outputs.arrayValue else {
                throw PipelineError(recipe: source, path: "outputs", problem: "must be a list")
            }
            recipe.outputs = try list.enumerated().map { index, output in
                try Self.requireKnownKeys(output, ["format", "options"], at: "outputs[\(index)]", in: source)
                guard let format = output["format"]?.stringValue else {
                    throw PipelineError(recipe: source, path: "outputs[\(index)].format", problem: "missing format id")
                }
                let options = (output["options"]?.objectValue ?? []).map {
                    ($0.key, $0.value.stringValue ?? $0.value.serialized())
                }
                return Output(format: format, options: Dictionary(options, uniquingKeysWith: { _, last in last }))
            }
        }
        if let evaluation = json["evaluate"] {
            try Self.requireKnownKeys(evaluation, ["text", "ctx", "chunks"], at: "evaluate", in: source)
            guard let text = evaluation["text"]?.stringValue else {
                throw PipelineError(recipe: source, path: "evaluate.text", problem: "missing text file")
            }
            func count(_ key: String) throws -> Int? {
                try Self.positiveInteger(evaluation, key, at: "evaluate", in: source)
            }
            recipe.evaluation = Evaluation(text: text, ctx: try count("ctx") ?? 512, chunks: try count("chunks"))
        }
        if let calibration = json["calibration"] {
            try Self.requireKnownKeys(
                calibration, ["file", "windows", "length", "seed", "statistics"], at: "calibration", in: source)
            guard let file = calibration["file"]?.stringValue else {
                throw PipelineError(recipe: source, path: "calibration.file", problem: "missing calibration text")
            }
            func count(_ key: String) throws -> Int? {
                try Self.positiveInteger(calibration, key, at: "calibration", in: source)
            }
            var seed: UInt64 = 0
            if let value = calibration["seed"] {
                guard let number = value.intValue, number >= 0 else {
                    throw PipelineError(
                        recipe: source, path: "calibration.seed", problem: "must be a whole number of at least 0")
                }
                seed = UInt64(number)
            }
            var statistics: String?
            if let value = calibration["statistics"] {
                guard let path = value.stringValue else {
                    throw PipelineError(recipe: source, path: "calibration.statistics", problem: "must be a path")
                }
                statistics = path
            }
            recipe.calibration = Calibration(
                file: file, windows: try count("windows") ?? 128, length: try count("length") ?? 512, seed: seed,
                statistics: statistics)
        }
        if let strict = json["strict"] {
            guard let value = strict.boolValue else {
                throw PipelineError(recipe: source, path: "strict", problem: "must be true or false")
            }
            recipe.strict = value
        }
        guard !recipe.steps.isEmpty || !recipe.outputs.isEmpty else {
            throw PipelineError(recipe: source, path: "steps", problem: "a recipe needs steps or outputs")
        }
        return recipe
    }
}

extension Recipe {
    static let topLevelKeys: Set<String> = [
        "name", "description", "input", "include", "without", "options", "steps", "outputs", "calibration",
        "evaluate", "strict",
    ]

    /// A misspelled key would otherwise be skipped and its setting silently left at the default.
    static func requireKnownKeys(_ value: JSONValue, _ known: Set<String>, at path: String, in source: String) throws {
        guard let entries = value.objectValue else {
            throw PipelineError(recipe: source, path: path, problem: "must be a mapping")
        }
        if let unknown = entries.first(where: { !known.contains($0.key) }) {
            throw PipelineError(
                recipe: source, path: path.isEmpty ? unknown.key : "\(path).\(unknown.key)",
                problem: "not a recipe key here (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// An optional count: absent, or a whole number of at least 1 (never a quoted number, which
    /// would otherwise fall back to the default unnoticed).
    static func positiveInteger(_ section: JSONValue, _ key: String, at path: String, in source: String) throws -> Int?
    {
        guard let value = section[key] else { return nil }
        if case .null = value { return nil }
        guard let number = value.intValue, number >= 1 else {
            throw PipelineError(recipe: source, path: "\(path).\(key)", problem: "must be a whole number of at least 1")
        }
        return number
    }
}

/// A recipe that cannot be used, with the recipe and the YAML path at fault.
public struct PipelineError: Error, LocalizedError, Equatable {
    public var recipe: String
    public var path: String
    public var problem: String

    public init(recipe: String, path: String, problem: String) {
        self.recipe = recipe
        self.path = path
        self.problem = problem
    }

    public var errorDescription: String? { path.isEmpty ? "\(recipe): \(problem)" : "\(recipe): \(path): \(problem)" }
}

extension JSONValue {
    /// A YAML document's node tree as JSON. Built from the composed nodes, not from Yams' `load`, whose
    /// constructor traps on a mapping key that is itself a mapping or a sequence (found by fuzzing).
    init(yaml node: Node?, depth: Int = 0) throws {
        func fail(_ problem: String) -> PipelineError { PipelineError(recipe: "", path: "", problem: problem) }
        guard depth < 64 else { throw fail("nested more than 64 levels deep") }
        guard let node else {
            self = .null
            return
        }
        switch node {
        case .scalar:
            let text = node.string ?? ""
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: self = .null
            case .bool: self = node.bool.map(JSONValue.bool) ?? .string(text)
            // Numbers are parsed here: Yams' own constructors trap on overflowing YAML 1.1 sexagesimal
            // integers such as 190:20:30:… (found by fuzzing).
            case .int: self = Self.integer(text).map(JSONValue.int) ?? .string(text)
            case .float: self = Self.float(text).map { .number("\($0)") } ?? .string(text)
            default: self = .string(text)
            }
        case .sequence(let sequence):
            self = .array(try sequence.map { try JSONValue(yaml: $0, depth: depth + 1) })
        case .mapping(let mapping):
            var entries: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar = key, let name = key.string else {
                    throw fail("a mapping key must be a plain string, not a mapping or a list")
                }
                guard entries[name] == nil else { throw fail("the key '\(name)' appears twice in one mapping") }
                entries[name] = try JSONValue(yaml: value, depth: depth + 1)
            }
            self = .object(entries.keys.sorted().map { ($0, entries[$0]!) })
        case .alias:
            throw fail("YAML aliases are not supported")
        }
    }

    /// A YAML integer: decimal, or 0x hexadecimal, 0o octal; nil when it does not fit an Int.
    static func integer(_ text: String) -> Int? {
        let digits = text.replacingOccurrences(of: "_", with: "")
        let negative = digits.hasPrefix("-")
        let body = negative || digits.hasPrefix("+") ? String(digits.dropFirst()) : digits
        let magnitude: Int? =
            body.hasPrefix("0x")
            ? Int(body.dropFirst(2), radix: 16)
            : body.hasPrefix("0o") ? Int(body.dropFirst(2), radix: 8) : Int(body)
        guard let magnitude else { return nil }
        return negative ? -magnitude : magnitude
    }

    /// A YAML float, with its spellings of infinity and NaN.
    static func float(_ text: String) -> Double? {
        let special: [String: Double] = [".inf": .infinity, "+.inf": .infinity, "-.inf": -.infinity, ".nan": .nan]
        return special[text.lowercased()] ?? Double(text.replacingOccurrences(of: "_", with: ""))
    }

    /// `self` with the entries of `other` merged in (objects recursively; anything else replaced).
    func merging(_ other: JSONValue) -> JSONValue {
        guard case .object(var mine) = self, case .object(let theirs) = other else { return other }
        for (key, value) in theirs {
            if let index = mine.firstIndex(where: { $0.key == key }) {
                mine[index].value = mine[index].value.merging(value)
            } else {
                mine.append((key, value))
            }
        }
        return .object(mine)
    }
}
