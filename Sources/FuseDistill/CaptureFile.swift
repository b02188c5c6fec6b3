// The top-k capture file (`.fktopk`): what one model predicts at every position of a run of
// sequences. One file per shard of sequences, written whole and renamed into place, read through
// mmap. docs/formats.md, "Top-k capture files", is the user-facing copy of this layout.
//
// All integers little-endian. Sections start at multiples of 64 bytes.
//
//   offset  size  field
//   0       8     magic "FKTOPK\0\0"
//   8       4     version (u32) = 1
//   12      4     k (u32): entries per position, 1...vocabularySize
//   16      4     vocabularySize (u32) of the model that was run
//   20      4     sequenceCount (u32) in this shard
//   24      4     flags (u32): bit 0 = per-token CE section holds values; bit 1 = fused targets
//   28      4     reserved, 0
//   32      16    modelHash: ContentHash of the model file(s) (high u64, low u64)
//   48      16    corpusHash: ContentHash of the segmented corpus (all sequences, not only this shard's)
//   64      8     firstSequence (u64): corpus index of this shard's first sequence
//   72      8     tokenCount (u64): positions in this shard, N
//   80      8     indexOffset (u64): sequenceCount × 16 bytes: tokenStart u64 (into the N positions),
//                 tokenCount u32, reserved u32
//   88      8     tokensOffset (u64): N × i32, the model's input token ids
//   96      8     topIDsOffset (u64): N × k × i32, top-k ids per position, most probable first
//   104     8     topLogProbsOffset (u64): N × k × f16, their log-probabilities (log-softmax over the
//                 full vocabulary, so exp sums to at most 1)
//   112     8     ceOffset (u64): N × f32, −log p(next token) at each position; 0 at a sequence's last
//                 position (no next token)
//   120     8     fileSize (u64): the whole file, a truncation check
//
// Position t of a sequence holds the prediction for token t+1 (the model's row of logits after token t).
import Foundation
import FuseIO
import FuseTensor

public struct CaptureHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("FKTOPK".utf8) + [0, 0]
    public static let version: UInt32 = 1
    public static let size = 128
    /// flags bit 0: the CE section holds per-token cross-entropies.
    public static let perTokenCE: UInt32 = 1
    /// flags bit 1: a fused-targets file (target tokens, fused top-k; a row whose first log-probability
    /// is −inf has no target).
    public static let fusedTargets: UInt32 = 2

    public var k: Int
    public var vocabularySize: Int
    public var sequenceCount: Int
    public var modelHash: ContentHash
    public var corpusHash: ContentHash
    public var firstSequence: Int
    public var tokenCount: Int
    public var flags: UInt32 = CaptureHeader.perTokenCE
}

/// One captured sequence, copied out of the file.
public struct CapturedSequence: Sendable, Equatable {
    public var tokens: [Int32]
    /// `[T, k]`
    public var topIDs: [Int32]
    /// `[T, k]`
    public var topLogProbs: [Float]
    /// `[T]`, −log p(token t+1); 0 at the last position.
    public var crossEntropy: [Float]

    public init(tokens: [Int32], topIDs: [Int32], topLogProbs: [Float], crossEntropy: [Float]) {
        self.tokens = tokens; self.topIDs = topIDs; self.topLogProbs = topLogProbs; self.crossEntropy = crossEntropy
    }

    /// Mean next-token CE over positions 0..<T−1 (the release's `metric_ce`); 0 for a one-token sequence.
    public var meanCE: Double {
        guard tokens.count > 1 else { return 0 }
        var s = 0.0
        for t in 0..<(tokens.count - 1) { s += Double(crossEntropy[t]) }
        return s / Double(tokens.count - 1)
    }
}

// MARK: - writing

public enum CaptureWriter {
    static func align64(_ x: Int) -> Int { (x + 63) / 64 * 64 }

    /// The bytes of one shard.
    public static func encode(k: Int, vocabularySize: Int, modelHash: ContentHash, corpusHash: ContentHash,
                              firstSequence: Int, sequences: [CapturedSequence], flags: UInt32 = CaptureHeader.perTokenCE) -> [UInt8] {
        let n = sequences.reduce(0) { $0 + $1.tokens.count }
        let indexOffset = align64(CaptureHeader.size)
        let tokensOffset = align64(indexOffset + sequences.count * 16)
        let idsOffset = align64(tokensOffset + n * 4)
        let lpOffset = align64(idsOffset + n * k * 4)
        let ceOffset = align64(lpOffset + n * k * 2)
        let size = align64(ceOffset + n * 4)
        var out = [UInt8](repeating: 0, count: size)
        out.withUnsafeMutableBytes { b in
            func put<T>(_ v: T, _ at: Int) { withUnsafeBytes(of: v) { b.baseAddress!.advanced(by: at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } } // invariant: size ≥ header
            for (i, m) in CaptureHeader.magic.enumerated() { b[i] = m }
            put(CaptureHeader.version.littleEndian, 8); put(UInt32(k).littleEndian, 12)
            put(UInt32(vocabularySize).littleEndian, 16); put(UInt32(sequences.count).littleEndian, 20)
            put(flags.littleEndian, 24)
            put(modelHash.high.littleEndian, 32); put(modelHash.low.littleEndian, 40)
            put(corpusHash.high.littleEndian, 48); put(corpusHash.low.littleEndian, 56)
            put(UInt64(firstSequence).littleEndian, 64); put(UInt64(n).littleEndian, 72)
            for (i, o) in [indexOffset, tokensOffset, idsOffset, lpOffset, ceOffset, size].enumerated() { put(UInt64(o).littleEndian, 80 + 8 * i) }
            var start = 0
            for (s, seq) in sequences.enumerated() {
                put(UInt64(start).littleEndian, indexOffset + s * 16); put(UInt32(seq.tokens.count).littleEndian, indexOffset + s * 16 + 8)
                for (t, tok) in seq.tokens.enumerated() {
                    put(tok.littleEndian, tokensOffset + (start + t) * 4)
                    put(seq.crossEntropy[t].bitPattern.littleEndian, ceOffset + (start + t) * 4)
                }
                for e in 0..<(seq.tokens.count * k) {
                    put(seq.topIDs[e].littleEndian, idsOffset + (start * k + e) * 4)
                    put(Convert.f16Bits(seq.topLogProbs[e]).littleEndian, lpOffset + (start * k + e) * 2)
                }
                start += seq.tokens.count
            }
        }
        return out
    }

    public static func write(path: String, k: Int, vocabularySize: Int, modelHash: ContentHash, corpusHash: ContentHash,
                             firstSequence: Int, sequences: [CapturedSequence], flags: UInt32 = CaptureHeader.perTokenCE) throws {
        try writeFileAtomically(path: path, bytes: encode(k: k, vocabularySize: vocabularySize, modelHash: modelHash,
                                                          corpusHash: corpusHash, firstSequence: firstSequence, sequences: sequences, flags: flags))
    }
}

// MARK: - reading

/// A shard opened through mmap. Every offset and count is checked against the file size on open, so
/// reads of sequences cannot fail afterwards except by index.
public final class CaptureShard: @unchecked Sendable {
    public let path: String
    public let header: CaptureHeader
    private let file: MappedFile
    private let offsets: (index: Int, tokens: Int, ids: Int, logProbs: Int, ce: Int)

    public convenience init(path: String) throws {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw DistillError.captureFile(path: path, message: "cannot open: \(error)") }
        try self.init(file: file)
    }

    public init(file: MappedFile) throws {
        self.file = file; path = file.path
        func fail(_ m: String) -> DistillError { .captureFile(path: file.path, message: m) }
        guard file.size >= CaptureHeader.size, let base = file.base else { throw fail("\(file.size) bytes, shorter than the \(CaptureHeader.size)-byte header") }
        let h = UnsafeRawBufferPointer(start: base, count: file.size)
        guard Array(h[0..<8]) == CaptureHeader.magic else { throw fail("bad magic \(Array(h[0..<8])); not a top-k capture file") }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: h.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: h.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        guard u32(8) == Int(CaptureHeader.version) else { throw fail("version \(u32(8)); this FuseKit reads version \(CaptureHeader.version)") }
        let k = u32(12), vocab = u32(16), count = u32(20)
        guard k >= 1, vocab >= 1, k <= vocab else { throw fail("k \(k) and vocabulary size \(vocab) are inconsistent") }
        let limit = UInt64(file.size)
        let fields = (0..<6).map { u64(80 + 8 * $0) }
        let n = u64(72)
        guard u64(120) == limit else { throw fail("header says \(u64(120)) bytes but the file has \(file.size); it is truncated") }
        guard fields.allSatisfy({ $0 <= limit }), n <= limit / 4, UInt64(count) <= limit / 16 else { throw fail("section offsets or counts lie outside the file") }
        let (index, tokens, ids, lps, ce) = (Int(fields[0]), Int(fields[1]), Int(fields[2]), Int(fields[3]), Int(fields[4]))
        let tn = Int(n)
        let needs: [(Int, Int, String)] = [(index, count * 16, "index"), (tokens, tn * 4, "tokens"), (ids, tn * k * 4, "top-k ids"),
                                           (lps, tn * k * 2, "top-k log-probabilities"), (ce, tn * 4, "cross-entropies")]
        for (o, c, what) in needs {
            let (end, overflow) = o.addingReportingOverflow(c)
            guard !overflow, end <= file.size else { throw fail("the \(what) section (\(c) bytes at \(o)) runs past the end of the file (\(file.size) bytes)") }
        }
        var expected = 0
        for s in 0..<count {
            let start = u64(index + s * 16), len = u32(index + s * 16 + 8)
            guard start == UInt64(expected), len >= 1 else { throw fail("sequence \(s) index entry (start \(start), \(len) tokens) is out of order or empty") }
            expected += len
        }
        guard expected == tn else { throw fail("the index covers \(expected) positions, the header says \(tn)") }
        header = CaptureHeader(k: k, vocabularySize: vocab, sequenceCount: count,
                               modelHash: ContentHash(high: u64(32), low: u64(40)), corpusHash: ContentHash(high: u64(48), low: u64(56)),
                               firstSequence: Int(u64(64)), tokenCount: tn, flags: UInt32(u32(24)))
        offsets = (index, tokens, ids, lps, ce)
    }

    /// Sequence `i` of this shard (0-based within the shard).
    public func sequence(_ i: Int) throws -> CapturedSequence {
        guard i >= 0, i < header.sequenceCount, let base = file.base else {
            throw DistillError.captureFile(path: path, message: "sequence \(i) requested, the shard has \(header.sequenceCount)")
        }
        let b = UnsafeRawBufferPointer(start: base, count: file.size)
        let start = Int(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: offsets.index + i * 16, as: UInt64.self)))
        let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: offsets.index + i * 16 + 8, as: UInt32.self)))
        let k = header.k
        var tokens = [Int32](repeating: 0, count: len), ce = [Float](repeating: 0, count: len)
        var ids = [Int32](repeating: 0, count: len * k), lps = [Float](repeating: 0, count: len * k)
        for t in 0..<len {
            tokens[t] = Int32(littleEndian: b.loadUnaligned(fromByteOffset: offsets.tokens + (start + t) * 4, as: Int32.self))
            ce[t] = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: offsets.ce + (start + t) * 4, as: UInt32.self)))
        }
        for e in 0..<(len * k) {
            ids[e] = Int32(littleEndian: b.loadUnaligned(fromByteOffset: offsets.ids + (start * k + e) * 4, as: Int32.self))
            lps[e] = Convert.float(fromF16: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: offsets.logProbs + (start * k + e) * 2, as: UInt16.self)))
        }
        return CapturedSequence(tokens: tokens, topIDs: ids, topLogProbs: lps, crossEntropy: ce)
    }

    /// Checks that this shard belongs to the run: same model, corpus, k and first sequence.
    public func check(modelHash: ContentHash, corpusHash: ContentHash, k: Int, firstSequence: Int, sequenceCount: Int) throws {
        if header.modelHash != modelHash { throw DistillError.captureMismatch(path: path, what: "the model hash", expected: modelHash.hex, found: header.modelHash.hex) }
        if header.corpusHash != corpusHash { throw DistillError.captureMismatch(path: path, what: "the corpus hash", expected: corpusHash.hex, found: header.corpusHash.hex) }
        if header.k != k { throw DistillError.captureMismatch(path: path, what: "k", expected: "\(k)", found: "\(header.k)") }
        if header.firstSequence != firstSequence || header.sequenceCount != sequenceCount {
            throw DistillError.captureMismatch(path: path, what: "the sequence range", expected: "\(firstSequence)+\(sequenceCount)",
                                               found: "\(header.firstSequence)+\(header.sequenceCount)")
        }
    }
}
