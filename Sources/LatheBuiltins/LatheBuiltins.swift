import FormatGGUF
import FormatSafetensors
import LatheCore
import PassEncoding

/// The one place that lists every built-in format and pass. Adding a format or pass is one line here.
public enum LatheBuiltins {
    /// The registry of everything built in, frozen. Readers are tried in this order when sniffing.
    public static let registry: Registry = builder().build()

    /// A builder holding every built-in registration, for a program that adds its own formats or
    /// passes (an in-process plugin) before freezing it.
    public static func builder() -> RegistryBuilder {
        var builder = RegistryBuilder()
        do {
            try builder.register(reader: GGUFReader.self)
            try builder.register(reader: HFDirectoryReader.self)
            try builder.register(reader: SafetensorsReader.self)
            try builder.register(writer: GGUFWriter.self)
            try builder.register(writer: HFDirectoryWriter.self)
            try builder.register(writer: SafetensorsWriter.self)
            try builder.register(pass: CastPass.self)
            try builder.register(pass: QuantizeGGMLPass.self)
            try builder.register(pass: ExternalPass.self)
        } catch {
            preconditionFailure("built-in registrations conflict: \(error)")
        }
        return builder
    }
}
