// Broken tokenizer files and inputs: each gets its specific error, never a crash.
import XCTest
@testable import FuseTokenizers

final class BadInputTests: XCTestCase {
    /// A tiny valid byte-level BPE; each case below breaks one thing.
    static let valid = #"""
    {"version":"1.0","added_tokens":[{"id":5,"content":"<|end|>","special":true,"normalized":false}],
     "normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
     "post_processor":null,"decoder":{"type":"ByteLevel"},
     "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"Ġ":3,"Ġab":4,"<|end|>":5},"merges":["a b","Ġ ab"]}}
    """#

    func load(_ text: String) throws -> Tokenizer { try Tokenizer(json: Array(text.utf8), path: "bad.json") }

    func expect(_ text: String, _ check: (TokenizerError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(text), file: file, line: line) { e in
            guard let t = e as? TokenizerError, check(t) else { return XCTFail("unexpected error \(e)", file: file, line: line) }
            XCTAssertFalse(t.description.isEmpty)
        }
    }

    func testValidBaseline() throws {
        let t = try load(Self.valid)
        XCTAssertEqual(t.encode("ab ab<|end|>"), [2, 4, 5])
        XCTAssertEqual(try t.decode([2, 4, 5]), "ab ab<|end|>")
        XCTAssertEqual(try t.decode([2, 4, 5], skipSpecialTokens: true), "ab ab")
    }

    func testMissingModel() {
        expect(#"{"version":"1.0","added_tokens":[]}"#) { if case .missingKey(_, "model") = $0 { return true }; return false }
    }

    func testUnknownModelType() {
        expect(Self.valid.replacingOccurrences(of: #""type":"BPE""#, with: #""type":"WordLevel""#)) {
            if case .unknownType(_, "model.type", "WordLevel") = $0 { return true }; return false
        }
    }

    func testUnknownStageTypes() {
        expect(Self.valid.replacingOccurrences(of: #""normalizer":null"#, with: #""normalizer":{"type":"Precompiled"}"#)) {
            if case .unknownType(_, "normalizer.type", "Precompiled") = $0 { return true }; return false
        }
        expect(Self.valid.replacingOccurrences(of: #""decoder":{"type":"ByteLevel"}"#, with: #""decoder":{"type":"CTC"}"#)) {
            if case .unknownType(_, "decoder.type", "CTC") = $0 { return true }; return false
        }
        expect(Self.valid.replacingOccurrences(of: #""post_processor":null"#, with: #""post_processor":{"type":"Mystery"}"#)) {
            if case .unknownType(_, "post_processor.type", "Mystery") = $0 { return true }; return false
        }
        expect(Self.valid.replacingOccurrences(of: #"{"type":"ByteLevel","add_prefix_space""#, with: #"{"type":"UnicodeScripts","add_prefix_space""#)) {
            if case .unknownType(_, "pre_tokenizer.type", "UnicodeScripts") = $0 { return true }; return false
        }
    }

    func testUnsupportedRegex() {
        let split = #"{"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"Isolated","invert":false}"#
        expect(Self.valid.replacingOccurrences(of: #"{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}"#, with: split)) {
            if case .unsupportedPattern(_, "pre_tokenizer.pattern", #"\d+"#) = $0 { return true }; return false
        }
    }

    func testMergesNamingUnknownTokens() {
        expect(Self.valid.replacingOccurrences(of: #""a b""#, with: #""a zz""#)) {
            if case .mergeUnknownToken(_, 0, "zz") = $0 { return true }; return false
        }
        expect(Self.valid.replacingOccurrences(of: #""ab":2,"#, with: "")) {
            if case .mergeResultMissing(_, 0, "ab") = $0 { return true }; return false
        }
        expect(Self.valid.replacingOccurrences(of: #""a b""#, with: #""ab""#)) {
            if case .badValue(_, "model.merges[0]", _) = $0 { return true }; return false
        }
    }

    func testBadValues() {
        expect(Self.valid.replacingOccurrences(of: #""vocab":{"a":0"#, with: #""vocab":{"a":-1"#)) {
            if case .badValue(_, "model.vocab.a", _) = $0 { return true }; return false
        }
        expect(Self.valid.replacingOccurrences(of: #""model":{"type":"BPE","#, with: #""model":{"type":"BPE","unk_token":"<unk>","#)) {
            if case .unknownToken(_, "model.unk_token", "<unk>") = $0 { return true }; return false
        }
        expect("{not json") { if case .unreadable = $0 { return true }; return false }
        expect("[1,2]") { if case .badValue = $0 { return true }; return false }
    }

    func testInvalidUTF8Input() throws {
        let t = try load(Self.valid)
        XCTAssertThrowsError(try t.encode(utf8: [0x61, 0x62, 0xFF, 0x61])) { e in
            XCTAssertEqual(e as? TokenizerError, .invalidUTF8(offset: 2))
        }
        XCTAssertThrowsError(try t.encode(utf8: [0x61, 0xE2, 0x96])) { e in   // truncated sequence
            XCTAssertEqual(e as? TokenizerError, .invalidUTF8(offset: 1))
        }
        XCTAssertThrowsError(try t.encode(utf8: [0xED, 0xA0, 0x80])) { e in   // encoded surrogate
            XCTAssertEqual(e as? TokenizerError, .invalidUTF8(offset: 0))
        }
        XCTAssertEqual(try t.encode(utf8: Array("ab".utf8)), [2])
    }

    func testIDsOutOfRange() throws {
        let t = try load(Self.valid)
        XCTAssertThrowsError(try t.decode([2, 6])) { e in XCTAssertEqual(e as? TokenizerError, .idOutOfRange(id: 6, vocabularySize: 6)) }
        XCTAssertThrowsError(try t.decode([-1])) { e in XCTAssertEqual(e as? TokenizerError, .idOutOfRange(id: -1, vocabularySize: 6)) }
        XCTAssertThrowsError(try t.decode([Int.max])) { e in guard case TokenizerError.idOutOfRange = e else { return XCTFail("\(e)") } }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try Tokenizer(contentsOf: "/nonexistent/tokenizer.json")) { e in
            guard case TokenizerError.unreadable = e else { return XCTFail("\(e)") }
        }
    }

    /// The heap merge (long words) and the linear reference agree.
    func testHeapMergeMatchesLinearScan() throws {
        let t = try Tokenizer(contentsOf: Fixtures.directory + "/gpt2-trained/tokenizer.json")
        let bpe = try XCTUnwrap(t.model as? BPEModel)
        for text in Fixtures.corpus.prefix(400) {
            var a = bpe.initialSymbols(ByteLevel.encode(Array(text.utf8)))
            var b = a
            bpe.mergeLinear(&a)
            if b.count >= 2 { bpe.mergeHeap(&b) }
            XCTAssertEqual(a, b, text)
        }
    }
}
