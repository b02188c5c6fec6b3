import ArgumentParser
import Foundation
import FuseIO
import FuseTokenizers

/// `fusekit tokenize MODEL --text FILE [--json] [--decode]`: ids and pieces of a text file, or, with
/// `--decode`, the text of a file of ids.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids and pieces of a text file, or decode ids back to text.",
        discussion: """
        MODEL is an HF folder with tokenizer.json, or a tokenizer.json file (a .gguf file once the \
        GGUF reader lands). The whole file is one text: its newlines are part of it.

        Examples:
          fusekit tokenize models/smollm2-hf --text prompt.txt
          fusekit tokenize models/smollm2-hf --text prompt.txt --json
          fusekit tokenize models/smollm2-hf --text ids.txt --decode     # ids: whitespace, commas or a JSON array
        """)

    @Argument(help: "An HF folder with tokenizer.json, or a tokenizer.json file.")
    var model: String

    @Option(name: .long, help: "The text file to tokenize (with --decode: a file of ids). '-' reads stdin.")
    var text: String

    @Flag(name: .long, help: "Decode: read ids from the file and print the text.")
    var decode = false

    @Flag(name: .long, help: "Encode without the special tokens the post-processor adds (BOS/EOS); decode without special tokens.")
    var noSpecialTokens = false

    @Flag(name: .long, help: "Print JSON: {\"ids\", \"tokens\", \"count\"} or, with --decode, {\"text\"}.")
    var json = false

    @Flag(name: .long, help: "Print only the number of tokens (and, on stderr, the encode time).")
    var countOnly = false

    @Flag(name: .long, help: ArgumentHelp("Cross-checks: the file holds one JSON string per line; print one {\"ids\", \"decoded\", \"skipped\"} line each (decodes with and without special tokens).", visibility: .hidden))
    var jsonl = false

    func run() throws {
        let tokenizer = try TokenizerLoader.load(model)
        let bytes = try readInput(text)
        if jsonl {
            for line in bytes.split(separator: UInt8(ascii: "\n")) {
                guard let s = try JSON.parse(Array(line)).string else { throw ValidationError("--jsonl: a line of \(text) is not a JSON string") }
                let ids = try tokenizer.encode(utf8: Array(s.utf8), addSpecialTokens: !noSpecialTokens)
                let decoded = try tokenizer.decode(ids, skipSpecialTokens: false)
                let skipped = try tokenizer.decode(ids, skipSpecialTokens: true)
                print(JSON.object([("ids", .array(ids.map { .int($0) })), ("decoded", .string(decoded)),
                                   ("skipped", .string(skipped))]).serialized())
            }
            return
        }
        if decode {
            let ids = try parseIDs(bytes)
            let decoded = try tokenizer.decode(ids, skipSpecialTokens: noSpecialTokens)
            if json { print(JSON.object([("text", .string(decoded))]).serialized()) } else { print(decoded, terminator: decoded.hasSuffix("\n") ? "" : "\n") }
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let ids = try tokenizer.encode(utf8: bytes, addSpecialTokens: !noSpecialTokens)
        if countOnly {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print(ids.count)
            FileHandle.standardError.write(Data("encoded \(bytes.count) bytes in \(seconds) s\n".utf8))
            return
        }
        let pieces = ids.map { tokenizer.token(for: $0) ?? "" }
        if json {
            print(JSON.object([("ids", .array(ids.map { .int($0) })), ("tokens", .array(pieces.map { .string($0) })),
                               ("count", .int(ids.count))]).serialized())
            return
        }
        print("\(ids.count) tokens")
        print(ids.map(String.init).joined(separator: " "))
        let width = String(ids.max() ?? 0).count
        for (id, piece) in zip(ids, pieces) {
            let label = String(id)
            print(String(repeating: " ", count: width - label.count) + label + "  " + piece.debugDescription + (tokenizer.isSpecial(id) ? "  (special)" : ""))
        }
    }

    func readInput(_ path: String) throws -> [UInt8] {
        if path == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FuseIOError.cannotOpen(path: path, reason: "no such file or not readable")
        }
        return Array(data)
    }

    /// Ids separated by whitespace or commas, optionally inside [ ].
    func parseIDs(_ bytes: [UInt8]) throws -> [Int] {
        let s = String(decoding: bytes, as: UTF8.self)
        let fields = s.split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == "[" || $0 == "]" })
        return try fields.map { f in
            guard let i = Int(f) else { throw ValidationError("--decode: '\(f)' in \(text) is not a token id") }
            return i
        }
    }
}

/// Finds the tokenizer of a model path: a `.gguf` file's vocabulary, or the tokenizer.json of an HF
/// folder (or of the folder holding a .safetensors file), or a tokenizer.json file itself.
enum TokenizerLoader {
    /// The tokenizer, or nil when the model carries none.
    static func find(_ path: String) throws -> Tokenizer? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FuseIOError.cannotOpen(path: path, reason: "no such file or folder")
        }
        if path.hasSuffix(".gguf") {
            let file = try GGUFFile(path: path)
            guard file.metadata["tokenizer.ggml.model"] != nil else { return nil }
            return try GGUFVocabulary(gguf: file).makeTokenizer()
        }
        if !isDir.boolValue, path.hasSuffix(".json") { return try Tokenizer(contentsOf: path) }   // a tokenizer.json itself
        let folder = isDir.boolValue ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else { return nil }
        return try Tokenizer(contentsOf: folder)
    }

    static func load(_ path: String) throws -> Tokenizer {
        guard let tokenizer = try find(path) else {
            throw FuseIOError.unsupported(path: path, what: "no tokenizer: expected tokenizer.json in the model folder or a GGUF vocabulary")
        }
        return tokenizer
    }
}
