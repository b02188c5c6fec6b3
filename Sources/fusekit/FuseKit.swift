import ArgumentParser
import FuseTensor

@main
struct FuseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusekit",
        abstract: "Fuse the knowledge of language models: merge, evolve, distill, transfer.",
        subcommands: [TokenizeCommand.self])
}
