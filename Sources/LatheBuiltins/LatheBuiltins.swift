import CKernels
import FormatGGUF
import FormatPacked
import FormatSafetensors
import LatheCore
import PassActivationQuant
import PassCalibration
import PassEncoding
import PassExternal
import PassPCA
import PassRotate
import PassSurgery
import PassWeightQuant

/// The one place that lists every built-in format and pass. Adding a format or pass is one line here.
public enum LatheBuiltins {
    /// The registry of everything built in, frozen. Readers are tried in this order when sniffing.
    public static let registry: Registry = builder().build()

    /// A builder holding every built-in registration, for a program that adds its own formats or
    /// passes (an in-process plugin) before freezing it. Also installs the SIMD encoders.
    public static func builder() -> RegistryBuilder {
        installEncoders()
        var builder = RegistryBuilder()
        do {
            try builder.register(reader: GGUFReader.self)
            try builder.register(reader: HFDirectoryReader.self)
            try builder.register(reader: SafetensorsReader.self)
            try builder.register(reader: PackedReader.self)
            try builder.register(writer: GGUFWriter.self)
            try builder.register(writer: HFDirectoryWriter.self)
            try builder.register(writer: SafetensorsWriter.self)
            try builder.register(writer: PackedWriter.self)
            try builder.register(pass: CastPass.self)
            try builder.register(pass: QuantizeGGMLPass.self)
            try builder.register(pass: ExternalPass.self)
            try builder.register(pass: UntieEmbeddingsPass.self)
            try builder.register(pass: FuseNormsPass.self)
            try builder.register(pass: CalibratePass.self)
            try builder.register(pass: PCABasisPass.self)
            try builder.register(pass: RotatePass.self)
            try builder.register(pass: OnlineHadamardPass.self)
            try builder.register(pass: QuantizeWeightsPass.self)
            try builder.register(pass: QuantizeActivationsPass.self)
            try builder.register(pass: QuantizeKVPass.self)
            try builder.register(pass: PackWeightsPass.self)
            // lpack stores the matrices a recipe quantized as integer codes, whatever input held them.
            try builder.register(preparation: PackWeightsPass.passID, for: PackedWriter.formatID)
        } catch {
            preconditionFailure("built-in registrations conflict: \(error)")
        }
        return builder
    }
}

extension LatheBuiltins {
    /// Lathe's SIMD encoders (F16C for F16 output, AVX2 for Q8_0 and Q4_0) in LatheCore's hooks.
    /// Each does nothing on a CPU without them (or on a thread told to use the portable bodies),
    /// leaving the work to the portable path.
    public static func installEncoders() {
        guard EncoderAcceleration.isInstalled != (true, true) else { return }
        EncoderAcceleration.install(
            half: { input, output, count in Int(lk_f32_to_f16(input, output, Int64(count))) },
            blocks: { type, input, blocks, output in
                Int(lk_quantize_ggml(Int32(type.rawValue), input, Int64(blocks), output))
            })
    }
}
