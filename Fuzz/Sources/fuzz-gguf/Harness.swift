import FormatGGUF
import Foundation
import FuzzSupport
import LatheCore

/// Seeds: the seed model in F32 with one extra tensor of every block type Lathe quantizes to, and
/// the same model in F16 (`make fuzz` adds the first 64 KiB of the real SmolLM2 file).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt {
    Seeds.initialize(argc, argv, harness: "fuzz-gguf") {
        let types: [GGMLBlockType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q6_K]
        let extras = try types.map {
            try TensorCodec.streamingConversion(SeedModel.tensor("extra.\($0)", [2, 256]), to: .quantized(.ggml($0)))
        }
        var halves = try SeedModel.graph()
        for tensor in halves.tensors where tensor.info.shape.dimensions.count == 2 {
            try halves.replace(TensorCodec.streamingConversion(tensor, to: .f16))
        }
        return try [("types.gguf", try SeedModel.graph(extras: extras)), ("f16.gguf", halves)].map { name, graph in
            try Seeds.written(name) { _ = try GGUFWriter().write(graph, to: $0, options: WriteOptions()) }
        }
    }
}

/// One GGUF file per input: read in llama.cpp's layout and in Lathe's canonical one (which undoes
/// the q/k permutation), then every tensor within the budget checked and decoded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.withFile(data, size, name: "input.gguf") { url in
        for naming in [TensorNaming.gguf, .huggingface] {
            FuzzFile.exercise { try GGUFReader().read(url, options: ReadOptions(naming: naming)) }
        }
    }
    return 0
}
