import LatheCore

/// HF `tokenizer.json` / `tokenizer_config.json` ↔ `TokenizerDescription` for byte-level BPE vocabularies.
enum HFTokenizer {
    /// Token type ids as GGUF numbers them.
    static let normal: Int32 = 1
    static let control: Int32 = 3
    static let userDefined: Int32 = 4

    static func description(
        tokenizer json: JSONValue, config: JSONValue?, path: String, diagnostics: Diagnostics
    ) throws -> TokenizerDescription {
        guard let model = json["model"], model["type"]?.stringValue == "BPE", let vocab = model["vocab"]?.objectValue
        else {
            throw SafetensorsError(
                path: path, rule: .unsupported, field: "model",
                problem: "only BPE tokenizers with a vocab are supported")
        }
        // Llama 2, Mistral and others keep SentencePiece's scheme inside a BPE tokenizer.json: spaces
        // as '▁', unknown bytes as <0xNN> tokens. GGUF's "gpt2" model would tokenize them as bytes of
        // GPT-2's alphabet, silently wrong, and its "llama" model needs SentencePiece scores.
        if model["byte_fallback"]?.boolValue == true
            || [json["normalizer"], json["pre_tokenizer"], json["decoder"]].compactMap({ $0?.serialized() }).contains(
                where: { $0.contains("Metaspace") || $0.contains("▁") })
        {
            throw SafetensorsError(
                path: path, rule: .unsupported, field: "model",
                problem:
                    "a SentencePiece-style BPE (byte fallback, '▁' for spaces) has no GGUF form Lathe writes; only byte-level BPE is mapped"
            )
        }
        var byID: [Int: (String, Int32)] = [:]
        for (token, id) in vocab {
            guard let id = id.intValue, id >= 0 else {
                throw SafetensorsError(
                    path: path, rule: .invalidConfig, field: "model.vocab.\(token)",
                    problem: "id must be a non-negative integer")
            }
            if let other = byID[id] {
                throw SafetensorsError(
                    path: path, rule: .invalidConfig, field: "model.vocab.\(token)",
                    problem: "id \(id) is also the id of '\(other.0)'; each token needs its own id")
            }
            byID[id] = (token, normal)
        }
        for added in json["added_tokens"]?.arrayValue ?? [] {
            guard let id = added["id"]?.intValue, let content = added["content"]?.stringValue else { continue }
            byID[id] = (content, added["special"]?.boolValue == true ? control : userDefined)
        }
        // Distinct ids are 0..<count exactly when the smallest is 0 and the largest count − 1 (no
        // arithmetic on a hostile id: Int.max + 1 would trap).
        let count = byID.count
        let (smallest, largest) = (byID.keys.min() ?? 0, byID.keys.max() ?? -1)
        guard smallest >= 0, largest == count - 1 else {
            throw SafetensorsError(
                path: path, rule: .invalidConfig, field: "model.vocab",
                problem: "token ids are not contiguous from 0 (\(count) tokens, ids \(smallest) to \(largest))")
        }
        let merges = (model["merges"]?.arrayValue ?? []).map { merge -> String in
            if let pair = merge.arrayValue { return pair.compactMap(\.stringValue).joined(separator: " ") }
            return merge.stringValue ?? ""
        }
        let idOf = Dictionary(byID.map { ($0.value.0, $0.key) }, uniquingKeysWith: { first, _ in first })
        func special(_ key: String) -> Int? {
            guard let value = config?[key] else { return nil }
            let content = value.stringValue ?? value["content"]?.stringValue
            return content.flatMap { idOf[$0] }
        }
        let pre = preTokenizerName(json["pre_tokenizer"])
        if pre == "default" {
            diagnostics.warning(
                "\(path): unrecognised pre-tokenizer; recording 'default', which llama.cpp treats as GPT-2's")
        }
        return TokenizerDescription(
            model: "gpt2", preTokenizer: pre, tokens: (0..<count).map { byID[$0]?.0 ?? "" },
            tokenTypes: (0..<count).map { byID[$0]?.1 ?? normal }, merges: merges, bosTokenID: special("bos_token"),
            eosTokenID: special("eos_token"), unknownTokenID: special("unk_token"),
            paddingTokenID: special("pad_token"),
            addBOS: config?["add_bos_token"]?.boolValue ?? false, addSpacePrefix: false,
            chatTemplate: config?["chat_template"]?.stringValue)
    }

    /// Llama 3's split pattern (digits in runs of up to three), which llama.cpp runs for `llama-bpe`.
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// llama.cpp picks the pre-tokenizer from a hash of the tokenizer's output; Lathe recognises the
    /// configurations it can name from their structure.
    static func preTokenizerName(_ json: JSONValue?) -> String {
        guard let json else { return "default" }
        if json["type"]?.stringValue == "ByteLevel" { return "gpt-2" }
        guard json["type"]?.stringValue == "Sequence", let steps = json["pretokenizers"]?.arrayValue, steps.count == 2,
            steps[1]["type"]?.stringValue == "ByteLevel"
        else { return "default" }
        if steps[0]["type"]?.stringValue == "Digits", steps[0]["individual_digits"]?.boolValue == true {
            return "smollm"
        }
        if steps[0]["type"]?.stringValue == "Split", steps[0]["pattern"]?["Regex"]?.stringValue == llama3Pattern,
            steps[0]["behavior"]?.stringValue == "Isolated", steps[1]["use_regex"]?.boolValue == false
        {
            return "llama-bpe"
        }
        return "default"
    }

    /// A `tokenizer.json` equivalent to `tokenizer` (byte-level BPE).
    static func tokenizerJSON(_ tokenizer: TokenizerDescription) -> JSONValue {
        let byteLevel: [(key: String, value: JSONValue)] = [
            ("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)),
            ("use_regex", .bool(true)),
        ]
        func sequence(_ first: [(key: String, value: JSONValue)], _ byteLevel: [(key: String, value: JSONValue)])
            -> JSONValue
        {
            .object([("type", .string("Sequence")), ("pretokenizers", .array([.object(first), .object(byteLevel)]))])
        }
        let pre: JSONValue
        switch tokenizer.preTokenizer {
        case "smollm":
            pre = sequence([("type", .string("Digits")), ("individual_digits", .bool(true))], byteLevel)
        case "llama-bpe":
            pre = sequence(
                [
                    ("type", .string("Split")), ("pattern", .object([("Regex", .string(llama3Pattern))])),
                    ("behavior", .string("Isolated")), ("invert", .bool(false)),
                ], byteLevel.map { $0.key == "use_regex" ? ($0.key, .bool(false)) : $0 })
        default: pre = .object(byteLevel)
        }
        var added: [JSONValue] = []
        var vocab: [(key: String, value: JSONValue)] = []
        for (id, token) in tokenizer.tokens.enumerated() {
            vocab.append((token, .int(id)))
            let type = id < tokenizer.tokenTypes.count ? tokenizer.tokenTypes[id] : normal
            if type == control || type == userDefined {
                added.append(
                    .object([
                        ("id", .int(id)), ("content", .string(token)), ("single_word", .bool(false)),
                        ("lstrip", .bool(false)),
                        ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(type == control)),
                    ]))
            }
        }
        return .object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
            ("normalizer", .null), ("pre_tokenizer", pre),
            ("post_processor", .object(byteLevel.map { $0.key == "trim_offsets" ? ($0.key, .bool(false)) : $0 })),
            ("decoder", .object(byteLevel)),
            (
                "model",
                .object([
                    ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null),
                    ("continuing_subword_prefix", .null),
                    ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)),
                    ("ignore_merges", .bool(false)), ("vocab", .object(vocab)),
                    ("merges", .array(tokenizer.merges.map(JSONValue.string))),
                ])
            ),
        ])
    }

    /// A `tokenizer_config.json` naming the special tokens and the chat template.
    static func configJSON(_ tokenizer: TokenizerDescription) -> JSONValue {
        func token(_ id: Int?) -> JSONValue {
            guard let id, id >= 0, id < tokenizer.tokens.count else { return .null }
            return .string(tokenizer.tokens[id])
        }
        var fields: [(key: String, value: JSONValue)] = [
            ("add_bos_token", .bool(tokenizer.addBOS)), ("add_prefix_space", .bool(tokenizer.addSpacePrefix)),
            ("bos_token", token(tokenizer.bosTokenID)), ("eos_token", token(tokenizer.eosTokenID)),
            ("unk_token", token(tokenizer.unknownTokenID)), ("pad_token", token(tokenizer.paddingTokenID)),
            ("clean_up_tokenization_spaces", .bool(false)), ("tokenizer_class", .string("GPT2Tokenizer")),
        ]
        if let template = tokenizer.chatTemplate { fields.append(("chat_template", .string(template))) }
        return .object(fields)
    }
}
