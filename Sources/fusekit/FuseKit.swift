import ArgumentParser
import Foundation
import FuseTensor

@main
struct FuseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusekit",
        abstract: "Fuse the knowledge of language models: merge, evolve, distill, transfer.",
        discussion: "MODEL is an HF folder (config.json + *.safetensors), a .safetensors file or a .gguf file.",
        subcommands: [InspectCommand.self, ConvertCommand.self, TokenizeCommand.self, GenerateCommand.self,
                      EvalCommand.self, MergeCommand.self, ExtractLoraCommand.self,
                      ApplyLoraCommand.self, TrainCommand.self, StatsCommand.self,
                      ReportCommand.self, EvolveCommand.self, TransferCommand.self, DistillCommand.self,
                      LogitsCommand.self])

    /// Errors from the libraries print as `error: ...` and exit 1; usage errors exit 2.
    static func main() {
        BLASSetup.preferFastKernels()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if error is CleanExit || error is ExitCode || code == .success { exit(withError: error) }   // --help, --version
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}
