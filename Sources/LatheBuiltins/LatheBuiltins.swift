import LatheCore

/// The one place that lists every built-in format and pass. Adding a format or pass is one line here.
public enum LatheBuiltins {
    /// The registry of everything built in, frozen.
    public static let registry: Registry = {
        let builder = RegistryBuilder()
        // Formats (issue "Formats") and passes (issues "Pipeline", "ResQ passes") register here.
        return builder.build()
    }()
}
