// Normalization and character classes as HF tokenizers 0.23.3 has them (its Unicode 8.0/9.0 crate
// tables), where Foundation's newer tables or its composition differ. Values from tokenizers'
// normalizers (Tools/checks/tokenizer_random.py, docs/crosschecks.md).
import XCTest
@testable import FuseTokenizers

final class UnicodeTablesTests: XCTestCase {
    func normalized(_ s: String, _ form: UnicodeNormalizer.Form) -> [UInt32] {
        scalars(unicodeNormalize(Array(s.utf8), form))
    }

    func testCompositionMatchesHF() {
        // An LV syllable and a trailing jamo compose (Foundation's NFC leaves them apart).
        XCTAssertEqual(normalized("\u{AC00}\u{11B5}", .nfc), [0xAC0E])
        XCTAssertEqual(normalized("\u{AC00}\u{11B5}", .nfkc), [0xAC0E])
        // A leading jamo and a nukta stay as they are (Foundation's NFKC gives U+ADF8).
        XCTAssertEqual(normalized("\u{1100}\u{11173}", .nfkc), [0x1100, 0x11173])
    }

    func testScalarsNewerThanUnicode9AreLeftAlone() {
        XCTAssertEqual(normalized("\u{32FF}", .nfkc), [0x32FF])                 // Unicode 12.1, <square> 令和
        XCTAssertEqual(normalized("\u{1FBF5}x", .nfkd), [0x1FBF5, 0x78])        // Unicode 13, <font> 5
        XCTAssertEqual(normalized("\u{11938}", .nfd), [0x11938])                // Unicode 13, canonical
        XCTAssertEqual(normalized("a\u{316}\u{1DF6}\u{301}", .nfd), [0x61, 0x316, 0x1DF6, 0x301])   // U+1DF6 (10.0): class 0
        XCTAssertEqual(normalized("a\u{1E944}\u{316}", .nfd), [0x61, 0x316, 0x1E944])               // U+1E944 (9.0): reordered
        XCTAssertEqual(normalized("\u{FB01}", .nfkc), [0x66, 0x69])
    }

    func testBertClassesAreUnicode8() {
        XCTAssertTrue(BertNormalizer.isOther(0x200E))        // Cf
        XCTAssertTrue(BertNormalizer.isOther(0xE31D))        // Co
        XCTAssertFalse(BertNormalizer.isOther(0xCD9EC))      // unassigned: kept
        XCTAssertFalse(BertNormalizer.isOther(0x0890))       // Cf since Unicode 14: kept
        XCTAssertTrue(isBertPunctuation(0x2E42))             // Unicode 7.0
        XCTAssertFalse(isBertPunctuation(0x2E52))            // Unicode 13.0
        XCTAssertTrue(isBertPunctuation(0x166D))             // Po in Unicode 8.0, So now
        XCTAssertTrue(Unicode_.isNonspacingMark8(0x0301))
        XCTAssertFalse(Unicode_.isNonspacingMark8(0x0897))   // Unicode 14.0
        XCTAssertTrue(Unicode_.isNonspacingMark8(0x1734))    // Mn in Unicode 8.0, Mc now
    }
}
