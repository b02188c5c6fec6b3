import XCTest
import FuseModels
import FuseTokenizers
@testable import FuseDistill

/// Opt-in: FUSEKIT_MODELS_DIR holding smollm2.gguf and gemma3-270m.gguf.
final class RealModelTests: XCTestCase {
    func modelsDir() throws -> String {
        guard let d = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"] else { throw XCTSkip("set FUSEKIT_MODELS_DIR to run real-model tests") }
        return d
    }

    /// The MinED search on the full vocabularies (49,152 SmolLM2 targets) gives the Python port's
    /// entries, and the soft alignment then matches the release at every position.
    func testMinEDAndSoftAlignmentOnFullVocabulariesMatchTheRelease() throws {
        let dir = try modelsDir()
        let f = try AlignmentFixture.load()
        let target = TokenSurfaces(tokenizer: try loadTokenizer(dir + "/smollm2.gguf"), mode: .release)
        let source = TokenSurfaces(tokenizer: try loadTokenizer(dir + "/gemma3-270m.gguf"), mode: .release)
        XCTAssertEqual(target.style, .byteLevel); XCTAssertEqual(source.style, .sentencePiece)
        let mapping = VocabularyMapping(source: source, target: target)
        for e in f.examples {   // the vocabulary strings are the ones transformers gives
            XCTAssertEqual(e.target_ids.map { String(String.UnicodeScalarView(target.strings[$0].compactMap(Unicode.Scalar.init))) }, e.target_tokens)
        }
        var checked = 0
        for (id, str) in f.source_strings {
            guard let sid = Int(id) else { continue }
            let translated = String(str.replacingOccurrences(of: "\u{2581}", with: "\u{0120}"))
            guard let expected = f.mined[translated] else { continue }
            let got = mapping.targetID(sid)
            XCTAssertEqual(String(String.UnicodeScalarView(target.strings[Int(got)].compactMap(Unicode.Scalar.init))), expected, "MinED of \(str)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 100)
        _ = ReleaseFixtureTests.compare(f, aligner: TokenAligner(mapping: mapping, vocabulary: .soft), mode: \.soft)
    }

    /// Share of SmolLM2 positions that get a Gemma 3 distribution on the tokenizer corpus, per mode.
    func testAlignmentCoverageSmolLM2FromGemma3() throws {
        let dir = try modelsDir()
        let tt = try loadTokenizer(dir + "/smollm2.gguf"), st = try loadTokenizer(dir + "/gemma3-270m.gguf")
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers/corpus.jsonl")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").prefix(200)
        let texts = try lines.map { try JSONDecoder().decode(String.self, from: Data($0.utf8)) }
        var results: [String: Double] = [:]
        for mode in SurfaceMode.allCases {
            let mapping = VocabularyMapping(source: TokenSurfaces(tokenizer: st, mode: mode), target: TokenSurfaces(tokenizer: tt, mode: mode))
            for vocab in VocabularyAlignment.allCases {
                let aligner = TokenAligner(mapping: mapping, vocabulary: vocab)
                var aligned = 0, total = 0
                for text in texts {
                    let s = st.encodeIDs(text, addSpecialTokens: true), t = tt.encodeIDs(text, addSpecialTokens: true)
                    guard s.count > 1, t.count > 1 else { continue }
                    let top = s.indices.map { s[min($0 + 1, s.count - 1)] }   // k = 1: the source's next token
                    let a = aligner.alignedSequence(sourceTokens: s, targetTokens: t, k: 1, topIDs: top, topLogProbs: top.map { _ in 0 }, meanCE: 0)
                    aligned += a.entries.dropLast().filter { if case .distribution = $0 { return true }; return false }.count
                    total += countTargetPositions(t, mapping.target)
                }
                results["\(mode.rawValue)/\(vocab.rawValue)"] = Double(aligned) / Double(total)
            }
        }
        print("alignment coverage SmolLM2 <- Gemma 3 (200 corpus entries):", results.sorted { $0.key < $1.key })
        let canonicalSoft = try XCTUnwrap(results["canonical/soft"]), releaseSoft = try XCTUnwrap(results["release/soft"])
        XCTAssertGreaterThanOrEqual(canonicalSoft, releaseSoft)
        XCTAssertGreaterThan(canonicalSoft, 0.5)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(results["canonical/soft"]), try XCTUnwrap(results["canonical/hard"]))
    }

    /// Capture on SmolLM2: the stored top-1 is the argmax of the model's logits, the stored
    /// log-probabilities and CE agree with a Float64 log-softmax, and a second run reuses the shard.
    func testCaptureMatchesLogitsAndResumes() throws {
        let dir = try modelsDir()
        let path = dir + "/smollm2.gguf"
        let model = try ModelRegistry.load(path)
        let tokenizer = try loadTokenizer(path)
        let corpus = Corpus(path: "mem", sequences: ["The quick brown fox jumps over the lazy dog.", "def f(x):\n    return x + 1\n", "Paris is the capital of"])
        let cache = NSTemporaryDirectory() + "fk-capture-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let runner = try CaptureRunner(name: "smollm2", modelPath: path, model: model, tokenizer: tokenizer, modelHash: ContentHash(high: 7, low: 7),
                                       settings: CaptureSettings(k: 4, shardSequences: 2))
        let (folder, stats) = try runner.run(corpus: corpus, cacheDirectory: cache)
        XCTAssertEqual(stats.shardsTotal, 2); XCTAssertEqual(stats.shardsReused, 0)
        let shard = try CaptureShard(path: CaptureRunner.shardPath(folder, 0))
        let seq = try shard.sequence(1)
        let tokens = tokenizer.encode(corpus.sequences[1], addSpecialTokens: true)
        XCTAssertEqual(seq.tokens.map(Int.init), tokens)
        let logits = try model.logits(tokens)
        let V = model.summary.vocabularySize
        for t in 0..<tokens.count {
            let row = logits[(t * V)..<((t + 1) * V)].map(Double.init)
            let mx = row.max()!, lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
            XCTAssertEqual(Int(seq.topIDs[t * 4]), row.firstIndex(of: mx)!)
            XCTAssertEqual(Double(seq.topLogProbs[t * 4]), mx - lse, accuracy: 1e-2)   // f16 storage
            if t + 1 < tokens.count { XCTAssertEqual(Double(seq.crossEntropy[t]), lse - row[tokens[t + 1]], accuracy: 1e-3) }
        }
        let again = try runner.run(corpus: corpus, cacheDirectory: cache)
        XCTAssertEqual(again.stats.shardsReused, 2); XCTAssertEqual(again.stats.tokensComputed, 0)
        // batched (three sequences, right padding) equals one at a time
        let batched = try runner.capture(corpus.sequences.map { tokenizer.encode($0, addSpecialTokens: true) }, firstSequence: 0)
        XCTAssertEqual(batched[1].topIDs, seq.topIDs)
        for (a, b) in zip(batched[1].topLogProbs, seq.topLogProbs) { XCTAssertEqual(a, b, accuracy: 2e-3) }
        XCTAssertThrowsError(try CaptureRunner(name: "x", modelPath: path, model: model, tokenizer: tokenizer, modelHash: ContentHash(high: 0, low: 0),
                                               settings: CaptureSettings(k: V + 1))) { e in
            guard case DistillError.topKTooLarge = e else { return XCTFail("\(e)") }
        }
    }
}

/// Opt-in end to end: SmolLM2 as both target and source. The same tokenizer must align one-to-one
/// everywhere (coverage 1), the source's capture is the target's (same model hash, captured once),
/// and the fused targets of each sequence equal the capture's renormalised top-k.
final class PipelineTests: XCTestCase {
    func testSelfFusionIsTheIdentity() throws {
        guard let dir = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"] else { throw XCTSkip("set FUSEKIT_MODELS_DIR") }
        let work = NSTemporaryDirectory() + "fk-pipeline-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "The quick brown fox jumps over the lazy dog.\nPython lists are mutable sequences.\n".write(toFile: work + "/train.txt", atomically: true, encoding: .utf8)
        let yaml = """
        target: \(dir)/smollm2.gguf
        sources: [{model: \(dir)/smollm2.gguf, name: again}]
        corpus: {train: \(work)/train.txt, block_tokens: 12}
        k: 5
        training: {enabled: false}
        """
        try yaml.write(toFile: work + "/spec.yml", atomically: true, encoding: .utf8)
        let spec = try DistillSpec.load(path: work + "/spec.yml")
        let run = DistillRun(spec: spec, cacheDirectory: work + "/cache")
        let report = try run.run(outDirectory: work + "/out", resume: false, force: false)
        XCTAssertEqual(report.alignment.first?.coverage, 1)
        XCTAssertEqual(report.captures.count, 2)
        XCTAssertEqual(report.captures[1].stats.shardsReused, report.captures[1].stats.shardsTotal)   // captured once
        let fused = try FusedTargets(folder: report.fused[0].folder)
        let capture = try CaptureShard(path: CaptureRunner.shardPath(report.captures[0].folder, 0))
        XCTAssertGreaterThan(fused.sequenceCount, 1)
        for i in 0..<fused.sequenceCount {
            let (tokens, targets) = try fused.sequence(i)
            let c = try capture.sequence(i)
            XCTAssertEqual(tokens, c.tokens)
            XCTAssertEqual(targets.ids, c.topIDs)
            for t in 0..<tokens.count {   // the stored log-probs renormalised over the 5 kept entries
                let row = (0..<5).map { Double(c.topLogProbs[t * 5 + $0]) }
                let z = log(row.reduce(0) { $0 + exp($1) })
                for e in 0..<5 { XCTAssertEqual(Double(targets.logProbs[t * 5 + e]), row[e] - z, accuracy: 1e-3 + abs(row[e] - z) * 1e-3) }   // f16: 2^-11 relative
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/out/distill.json"))
        XCTAssertThrowsError(try run.run(outDirectory: work + "/out", resume: false, force: false)) { e in
            XCTAssertEqual(e as? DistillError, .outputExists(path: work + "/out"))
        }
    }
}
