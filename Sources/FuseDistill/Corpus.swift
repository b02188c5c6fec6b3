// The corpus as a list of sequences every model reads: plain UTF-8 text cut at line ends into blocks of
// at most `blockTokens` tokens of the *target* tokenizer (FuseLLM's `split_long_text.py` cuts by the
// target's tokens too). Each source then tokenizes the same block texts, so position counts differ
// per model while the text is shared. The corpus hash covers the block texts, so a capture is reused
// exactly when the same blocks are read.
import Foundation
import FuseIO
import FuseTokenizers

public struct Corpus: Sendable {
    public var path: String
    public var sequences: [String]
    public var hash: ContentHash

    public init(path: String, sequences: [String]) {
        self.path = path; self.sequences = sequences
        var h = ContentHasher()
        h.update(UInt64(sequences.count))
        for s in sequences { h.update(UInt64(s.utf8.count)); h.update(s) }
        hash = h.finish()
    }

    /// Reads `path` (UTF-8 checked, with the offset of the first bad byte) and cuts it into blocks.
    public static func load(path: String, tokenizer: Tokenizer, blockTokens: Int, maxSequences: Int? = nil) throws -> Corpus {
        let text = try readText(path)
        return Corpus(path: path, sequences: segment(text, tokenizer: tokenizer, blockTokens: blockTokens, maxSequences: maxSequences))
    }

    public static func readText(_ path: String) throws -> String {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw DistillError.corpus(path: path, message: "cannot read: \(error)") }
        guard file.size > 0 else { throw DistillError.corpus(path: path, message: "empty corpus") }
        let bytes = try file.bytes(offset: 0, count: file.size, what: "corpus")
        if let bad = firstInvalidUTF8(bytes) { throw DistillError.invalidUTF8(path: path, offset: bad) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Greedy packing of whole lines (each with its newline) while the target token count stays within
    /// the block; a line longer than a block is cut between words. Whitespace-only blocks are dropped.
    public static func segment(_ text: String, tokenizer: Tokenizer, blockTokens: Int, maxSequences: Int? = nil) -> [String] {
        var out: [String] = []
        var current = "", currentTokens = 0
        func count(_ s: String) -> Int { tokenizer.encode(s, addSpecialTokens: false).count }
        func flush() {
            if !current.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { out.append(current) }
            current = ""; currentTokens = 0
        }
        func add(_ piece: String) {
            let n = count(piece)
            if currentTokens + n > blockTokens, !current.isEmpty {
                // token counts of pieces add up only approximately; confirm before packing
                flush()
            } else if !current.isEmpty, count(current + piece) > blockTokens {
                flush()
            }
            current += piece; currentTokens += n
        }
        var lines: [String] = []
        text.enumerateLines { line, _ in lines.append(line) }
        for (i, line) in lines.enumerated() {
            if let maxSequences, out.count >= maxSequences { break }
            let piece = line + (i + 1 < lines.count || text.hasSuffix("\n") ? "\n" : "")
            if count(piece) <= blockTokens { add(piece); continue }
            var words = ""   // an over-long line: cut between words
            for word in piece.split(separator: " ", omittingEmptySubsequences: false) {
                let next = words.isEmpty ? String(word) : words + " " + word
                if count(next) > blockTokens, !words.isEmpty { add(words); flush(); words = " " + String(word) } else { words = next }
            }
            if !words.isEmpty { add(words) }
        }
        flush()
        if let maxSequences, out.count > maxSequences { out.removeLast(out.count - maxSequences) }
        return out
    }
}

/// Offset of the first byte that is not valid UTF-8, or nil.
func firstInvalidUTF8(_ b: UnsafeRawBufferPointer) -> Int? {
    var i = 0
    let n = b.count
    while i < n {
        let c = b[i]
        if c < 0x80 { i += 1; continue }
        let need: Int
        var minimum: UInt32
        var v: UInt32
        switch c {
        case 0xC2...0xDF: need = 1; minimum = 0x80; v = UInt32(c & 0x1F)
        case 0xE0...0xEF: need = 2; minimum = 0x800; v = UInt32(c & 0x0F)
        case 0xF0...0xF4: need = 3; minimum = 0x10000; v = UInt32(c & 0x07)
        default: return i
        }
        guard i + need < n else { return i }
        for k in 1...need {
            let d = b[i + k]
            guard d & 0xC0 == 0x80 else { return i }
            v = v << 6 | UInt32(d & 0x3F)
        }
        if v < minimum || v > 0x10FFFF || (0xD800...0xDFFF).contains(v) { return i }
        i += need + 1
    }
    return nil
}
