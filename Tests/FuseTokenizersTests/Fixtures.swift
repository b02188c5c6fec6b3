// Loads the reference outputs written by Tools/fixtures/tokenizer_fixtures.py (HF tokenizers 0.23.3).
import Foundation
import FuseIO
import XCTest
@testable import FuseTokenizers

enum Fixtures {
    static var directory: String { Bundle.module.resourcePath! + "/tokenizers" }

    static let corpus: [String] = {
        let text = (try? String(contentsOfFile: directory + "/corpus.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
            (try? JSON.parse(String(line)).string) ?? "<unreadable fixture line>"
        }
    }()

    static func expectedIDs(_ name: String) throws -> [[Int]] {
        let text = try String(contentsOfFile: directory + "/expected/\(name).ids", encoding: .utf8)
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
            line.split(separator: " ").map { Int($0)! }
        }
    }

    /// Per corpus entry: (decode, decode skipping specials). The file stores null when both give
    /// the entry back, {"p", "s"} when decode is p + entry + s, else both strings.
    static func expectedDecodes(_ name: String) throws -> [(String, String)] {
        let text = try String(contentsOfFile: directory + "/expected/\(name).decoded.jsonl", encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        return try zip(lines, corpus).map { line, entry in
            let j = try JSON.parse(String(line))
            if j.isNull { return (entry, entry) }
            if let p = j["p"]?.string, let s = j["s"]?.string { return (p + entry + s, entry) }
            return (j.array![0].string!, j.array![1].string!)
        }
    }

    /// The real models' tokenizer files (written by the fixture script), when FUSEKIT_MODELS_DIR is set.
    static var modelsDirectory: String? {
        guard let d = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"], !d.isEmpty else { return nil }
        return d + "/tokenizers"
    }
}

/// Encodes the whole corpus and compares with the reference ids and decodes; fails with the first
/// mismatching entries (index, text, expected, got). Returns the number of exact entries.
@discardableResult
func checkExactness(_ tokenizer: Tokenizer, reference name: String, decode: Bool = true,
                    file: StaticString = #filePath, line: UInt = #line) throws -> Int {
    let corpus = Fixtures.corpus
    let expected = try Fixtures.expectedIDs(name)
    XCTAssertGreaterThanOrEqual(corpus.count, 2000, "fixture corpus too small", file: file, line: line)
    XCTAssertEqual(corpus.count, expected.count, "\(name): corpus and reference ids differ in length; rerun the fixture script", file: file, line: line)
    let decodes = decode ? try Fixtures.expectedDecodes(name) : []
    var exact = 0, reported = 0
    for (k, text) in corpus.enumerated() where k < expected.count {
        let got = tokenizer.encode(text)
        if got == expected[k] { exact += 1 } else if reported < 5 {
            reported += 1
            XCTFail("\(name) entry \(k) \(text.debugDescription): expected \(expected[k]) got \(got)", file: file, line: line)
        }
        if decode, k < decodes.count {
            let want = decodes[k]
            let d0 = try tokenizer.decode(expected[k]), d1 = try tokenizer.decode(expected[k], skipSpecialTokens: true)
            if (d0 != want.0 || d1 != want.1) && reported < 5 {
                reported += 1
                XCTFail("\(name) decode of entry \(k): expected \(want.0.debugDescription) / \(want.1.debugDescription), got \(d0.debugDescription) / \(d1.debugDescription)", file: file, line: line)
            }
        }
    }
    print("\(name): \(exact)/\(corpus.count) entries exact")
    return exact
}
