// fuzz-formats: a seeded mutation fuzzer for FuseKit's file parsers.
//
//   fuzz-formats gguf|safetensors SECONDS [SEED]
//
// Mutates valid seed files (bit flips, inserts, deletes, truncation, splices, interesting
// integers), parses each mutant and, when it is accepted, reads everything it claims to hold.
// A parser may refuse an input only with a FuseIOError; a crash, any other error, a broken
// invariant or a runaway allocation saves the input under .build/fuzz-out/ and exits 1. The same seed
// replays the same inputs. Build with `swift build -c release --product fuzz-formats`.
import Foundation
import FuseIO

let arguments = CommandLine.arguments
guard arguments.count >= 3, let seconds = Double(arguments[2]), seconds > 0 else {
    print("usage: fuzz-formats gguf|safetensors SECONDS [SEED]")
    exit(2)
}
let seed = arguments.count > 3 ? UInt64(arguments[3]) ?? 1 : 1
let outDir = ".build/fuzz-out"

switch arguments[1] {
case "gguf":
    let seeds: [[UInt8]]
    do { seeds = try GGUFTarget.seeds() } catch {
        print("fuzz-formats gguf: cannot build the seeds: \(error)")
        exit(1)
    }
    var iteration = 0
    fuzz(format: "gguf", seconds: seconds, seed: seed, seeds: seeds, outDir: outDir) { input in
        iteration += 1
        try GGUFTarget.run(input, iteration: iteration)
    }
case "safetensors":
    // HOOK(safetensors): plug the safetensors parser in here, like the gguf case: build valid
    // seed files with the safetensors writer, then
    //     fuzz(format: "safetensors", seconds: seconds, seed: seed, seeds: seeds, outDir: outDir) { input in
    //         /* parse `input`, read every tensor, check invariants; throw FuseIOError to refuse */
    //     }
    // `Mutator` and `fuzz` (Harness.swift) are format-agnostic.
    print("safetensors: not wired yet")
default:
    print("usage: fuzz-formats gguf|safetensors SECONDS [SEED]")
    exit(2)
}
