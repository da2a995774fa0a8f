import LatheCLI

@main
struct LatheMain {
    static func main() {
        LatheCLI.main()
    }
}
