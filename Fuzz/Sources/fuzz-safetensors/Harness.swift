import FormatSafetensors
import Foundation
import FuzzSupport
import LatheCore

/// Seeds: the seed model in F32, and in mixed F16/BF16.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt {
    Seeds.initialize(argc, argv, harness: "fuzz-safetensors") {
        var mixed = try SeedModel.graph()
        for (index, tensor) in mixed.tensors.enumerated() where tensor.info.shape.dimensions.count == 2 {
            try mixed.replace(TensorCodec.streamingConversion(tensor, to: index % 2 == 0 ? .f16 : .bf16))
        }
        return try [("f32.safetensors", try SeedModel.graph()), ("f16-bf16.safetensors", mixed)].map { name, graph in
            try Seeds.written(name) { _ = try SafetensorsWriter().write(graph, to: $0, options: WriteOptions()) }
        }
    }
}

/// One safetensors file per input, read and decoded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.withFile(data, size, name: "input.safetensors") { url in
        FuzzFile.exercise { try SafetensorsReader().read(url, options: ReadOptions()) }
    }
    return 0
}
