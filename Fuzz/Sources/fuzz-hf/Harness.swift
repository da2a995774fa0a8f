import FormatSafetensors
import Foundation
import FuzzSupport
import LatheCore

/// The JSON files of an HF directory, in the order an input holds them, separated by NUL bytes.
let files = ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]

/// The directory each input is unpacked into, beside a fixed, valid `model.safetensors`.
let directory: URL = {
    let url = FuzzFile.directory.appendingPathComponent("hf")
    do {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let weights = url.appendingPathComponent("model.safetensors")
        _ = try SafetensorsWriter().write(SeedModel.graph(), to: weights, options: WriteOptions(overwrite: true))
    } catch { fatalError("fuzz-hf: cannot write the weights: \(error)") }
    return url
}()

/// Seeds: the seed model's HF directory as Lathe writes it.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt {
    Seeds.initialize(argc, argv, harness: "fuzz-hf") {
        let written = FuzzFile.directory.appendingPathComponent("seed-hf")
        defer { try? FileManager.default.removeItem(at: written) }
        _ = try HFDirectoryWriter().write(SeedModel.graph(), to: written, options: WriteOptions(overwrite: true))
        let parts = files.map { (try? [UInt8](Data(contentsOf: written.appendingPathComponent($0)))) ?? [] }
        return [("seed-hf", Array(parts.joined(separator: [0])))]
    }
}

/// Splits the input into the JSON files (a missing part leaves that file absent), reads the directory.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = UnsafeBufferPointer(start: data, count: size).split(separator: 0, omittingEmptySubsequences: false)
    for (index, name) in files.enumerated() {
        let url = directory.appendingPathComponent(name)
        if index < parts.count {
            parts[index].withUnsafeBytes { FuzzFile.write($0, to: url) }
        } else {
            try? FileManager.default.removeItem(at: url)
        }
    }
    FuzzFile.exercise { try HFDirectoryReader().read(directory, options: ReadOptions()) }
    return 0
}
