import LatheCLI

@main
struct LatheMain {
    static func main() async {
        await LatheCLI.main()
    }
}
