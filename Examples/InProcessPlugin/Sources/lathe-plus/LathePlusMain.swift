import LatheBuiltins
import LatheCLI

@main
struct LathePlusMain {
    static func main() {
        var builder = LatheBuiltins.builder()
        do {
            try builder.register(pass: ScaleNormsPass.self)
        } catch {
            preconditionFailure("\(error)")
        }
        LatheCLI.main(registry: builder.build())
    }
}
