import LatheBuiltins
import LatheCLI

@main
struct LathePlusMain {
    static func main() async {
        var builder = LatheBuiltins.builder()
        do {
            try builder.register(pass: ScaleNormsPass.self)
        } catch {
            preconditionFailure("\(error)")
        }
        await LatheCLI.main(registry: builder.build())
    }
}
