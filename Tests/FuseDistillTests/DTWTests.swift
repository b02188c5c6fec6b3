import XCTest
@testable import FuseDistill

func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

/// Surfaces from literal vocabulary strings, id = index.
func surfaces(_ tokens: [String], style: TokenizerStyle, mode: SurfaceMode = .release, special: Set<Int> = []) -> TokenSurfaces {
    let strings = tokens.map { mode == .release ? scalars($0) : canonicalForm(scalars($0), style: style) }
    return TokenSurfaces(strings: strings, special: tokens.indices.map { special.contains($0) }, style: style, mode: mode)
}

final class DTWTests: XCTestCase {
    func testEditDistance() {
        XCTAssertEqual(editDistance(scalars("kitten"), scalars("sitting")), 3)
        XCTAssertEqual(editDistance(scalars(""), scalars("abc")), 3)
        XCTAssertEqual(editDistance(scalars("York"), scalars("Yorker")), 2)
        XCTAssertEqual(editDistance(scalars("naïve"), scalars("naive")), 1)   // code points, as Python's editdistance on str
    }

    func testBoundedEditDistanceAgreesWithinBound() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let a = (0..<Int.random(in: 0...7, using: &rng)).map { _ in UInt32.random(in: 97...100, using: &rng) }
            let b = (0..<Int.random(in: 0...7, using: &rng)).map { _ in UInt32.random(in: 97...100, using: &rng) }
            let d = editDistance(a, b)
            for bound in 0...6 {
                let e = editDistance(a, b, bound: bound)
                if d <= bound { XCTAssertEqual(e, d, "\(a) \(b) bound \(bound)") } else { XCTAssertGreaterThan(e, bound) }
            }
        }
    }

    /// Source "▁New ▁York er" against target "ĠNew ĠYorker": the target's second token takes two source
    /// tokens (one-to-many). Cumulative costs by hand: D[1][1] = 2, D[2][1] = 4 + 2, back-trace up then diagonal.
    func testOneTargetTokenToManySourceTokens() {
        let s = ["New", "York", "er"].map(scalars), t = ["New", "Yorker"].map(scalars)
        let a = dynamicTimeWarping(sourceCount: 3, targetCount: 2) { editDistance(s[$0], t[$1]) }
        XCTAssertEqual(a.targetToSource, [[0], [1, 2]])
        XCTAssertEqual(a.sourceToTarget, [[0], [1], [1]])
        XCTAssertEqual(a.cost, 6)
    }

    /// Many target tokens to one source token: "▁Yorker" against "ĠYork" "er".
    func testManyTargetTokensToOneSourceToken() {
        let s = ["Yorker"].map(scalars), t = ["York", "er"].map(scalars)
        let a = dynamicTimeWarping(sourceCount: 1, targetCount: 2) { editDistance(s[$0], t[$1]) }
        XCTAssertEqual(a.targetToSource, [[0], [0]])
        XCTAssertEqual(a.sourceToTarget, [[0, 1]])
    }

    /// Ties in the back-trace prefer the diagonal, then up (numpy argmin of [diag, up, left]).
    func testTieBreakPrefersDiagonal() {
        let a = dynamicTimeWarping(sourceCount: 2, targetCount: 2) { _, _ in 0 }
        XCTAssertEqual(a.targetToSource, [[0], [1]])
        let b = dynamicTimeWarping(sourceCount: 3, targetCount: 2) { _, _ in 0 }
        // from (2,1): diag (1,0)=0, up (1,1)=0 -> diag; then (1,0) -> up to (0,0)
        XCTAssertEqual(b.targetToSource, [[0, 1], [2]])
    }

    func testAlignerSkipsSpecialTokens() {
        let src = surfaces(["<bos>", "▁the", "▁cat"], style: .sentencePiece, special: [0])
        let tgt = surfaces(["Ġthe", "Ġcat"], style: .byteLevel)
        let aligner = TokenAligner(mapping: VocabularyMapping(source: src, target: tgt), vocabulary: .hard)
        XCTAssertEqual(aligner.align(sourceTokens: [0, 1, 2], targetTokens: [0, 1]), [[1], [2]])
    }
}
