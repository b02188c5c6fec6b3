import Foundation
import FuseTensor

/// How teacher layers are chosen for the student's layers.
public enum LayerSelection: String, Sendable, CaseIterable {
    /// The student-depth teacher layers with the largest summed sensitivity, in their original order
    /// (the released method).
    case sensitivity
    /// The first / last student-depth teacher layers (ablations of the paper).
    case first, last
    /// Student-depth teacher layers drawn at random (seeded), in their original order.
    case random
    /// For a teacher with fewer layers than the student: student layer k takes teacher layer
    /// ⌊k · T / S⌋, so every teacher layer is used ⌊S/T⌋ or ⌈S/T⌉ times, in order (and with T ≥ S it
    /// spreads the S picks evenly over the teacher's depth).
    case spread
}

/// The teacher layer for each student layer. `totals[l]` is teacher layer l's summed sensitivity
/// (needed by `.sensitivity` only). A teacher shallower than the student needs `.spread`.
public func selectLayers(_ rule: LayerSelection, teacherLayers t: Int, studentLayers s: Int, totals: [Int: Double] = [:],
                         seed: UInt64 = 0) throws -> [Int] {
    guard t > 0, s > 0 else { throw TransferError.invalidArgument("layer selection needs positive layer counts (teacher \(t), student \(s))") }
    if rule != .spread && t < s {
        throw TransferError.spec(key: "layer_selection",
                                 what: "the teacher has \(t) layers and the student \(s); '\(rule.rawValue)' picks distinct teacher layers, so it needs a teacher at least as deep — use 'spread'")
    }
    switch rule {
    case .spread:
        return (0..<s).map { $0 * t / s }
    case .first:
        return Array(0..<s)
    case .last:
        return Array((t - s)..<t)
    case .random:
        var rng = SeededRNG(seed: seed, name: "transfer.layers", chunk: 0)
        var order = Array(0..<t)
        for i in stride(from: t - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order.prefix(s).sorted()
    case .sensitivity:
        guard (0..<t).allSatisfy({ totals[$0] != nil }) else {
            throw TransferError.invalidArgument("sensitivity layer selection needs a score for each of the teacher's \(t) layers")
        }
        // Largest sums first; ties keep the earlier layer.
        let ranked = (0..<t).sorted { (totals[$0]!, -$0) > (totals[$1]!, -$1) }
        return ranked.prefix(s).sorted()
    }
}

/// How a teacher matrix is cut to the student's shape.
public enum DimensionSelection: String, Sendable, CaseIterable {
    /// The contiguous block of the student's shape with the largest summed sensitivity (released).
    case block
    /// The rows and the columns with the largest mean sensitivity, chosen independently, kept in order.
    case scattered
}

/// Where a student-shaped piece sits in a teacher matrix: the kept row and column indices.
public struct MatrixSelection: Equatable, Sendable {
    public var rows: [Int]
    public var columns: [Int]
    /// Summed sensitivity of the kept elements.
    public var score: Double
}

/// Chooses `r × c` of an `R × C` sensitivity matrix (row-major). Rows move in steps of `rowStep`
/// (a head size, so q/k/v keep whole heads) and columns in steps of `columnStep` (o_proj's input is
/// heads too); `r` and `c` must then be multiples of the steps.
public func selectSubmatrix(_ scores: [Float], rows R: Int, columns C: Int, keepRows r: Int, keepColumns c: Int,
                            rule: DimensionSelection, rowStep: Int = 1, columnStep: Int = 1, name: String = "matrix") throws -> MatrixSelection {
    guard scores.count == R * C else { throw TransferError.invalidArgument("'\(name)': \(scores.count) scores for a \(R)×\(C) matrix") }
    guard r <= R, c <= C else { throw TransferError.studentLarger(tensor: name, student: [r, c], teacher: [R, C]) }
    guard r > 0, c > 0, rowStep > 0, columnStep > 0, r % rowStep == 0, c % columnStep == 0, R % rowStep == 0, C % columnStep == 0 else {
        throw TransferError.invalidArgument("'\(name)': cannot keep \(r)×\(c) of \(R)×\(C) in steps of \(rowStep)×\(columnStep)")
    }
    switch rule {
    case .block:
        return bestBlock(scores, rows: R, columns: C, keepRows: r, keepColumns: c, rowStep: rowStep, columnStep: columnStep)
    case .scattered:
        // Mean sensitivity per row (per row group of `rowStep`) and per column group, top ones kept in order.
        var rowSum = [Double](repeating: 0, count: R / rowStep), colSum = [Double](repeating: 0, count: C / columnStep)
        for i in 0..<R {
            for j in 0..<C {
                let v = Double(scores[i * C + j])
                rowSum[i / rowStep] += v; colSum[j / columnStep] += v
            }
        }
        let keepR = (0..<rowSum.count).sorted { (rowSum[$0], -$0) > (rowSum[$1], -$1) }.prefix(r / rowStep).sorted()
        let keepC = (0..<colSum.count).sorted { (colSum[$0], -$0) > (colSum[$1], -$1) }.prefix(c / columnStep).sorted()
        let rows = keepR.flatMap { g in (g * rowStep)..<((g + 1) * rowStep) }
        let cols = keepC.flatMap { g in (g * columnStep)..<((g + 1) * columnStep) }
        var score = 0.0
        for i in rows { for j in cols { score += Double(scores[i * C + j]) } }
        return MatrixSelection(rows: rows, columns: cols, score: score)
    }
}

/// Exhaustive search of every block offset with a 2-D prefix-sum table: O(R·C) to build, O(1) per
/// offset, each row of offsets one vectorisable pass.
func bestBlock(_ scores: [Float], rows R: Int, columns C: Int, keepRows r: Int, keepColumns c: Int,
               rowStep: Int, columnStep: Int) -> MatrixSelection {
    let w = C + 1
    var p = [Double](repeating: 0, count: (R + 1) * w)
    for i in 0..<R {
        var run = 0.0
        for j in 0..<C {
            run += Double(scores[i * C + j])
            p[(i + 1) * w + j + 1] = p[i * w + j + 1] + run
        }
    }
    var best = -Double.infinity, bi = 0, bj = 0
    for i in stride(from: 0, through: R - r, by: rowStep) {
        let top = i * w, bottom = (i + r) * w
        for j in stride(from: 0, through: C - c, by: columnStep) {
            let s = p[bottom + j + c] - p[top + j + c] - p[bottom + j] + p[top + j]
            if s > best { best = s; bi = i; bj = j }
        }
    }
    return MatrixSelection(rows: Array(bi..<(bi + r)), columns: Array(bj..<(bj + c)), score: best)
}

/// The selected piece of a row-major `R × C` matrix.
public func extract(_ matrix: [Float], columns C: Int, selection: MatrixSelection) -> [Float] {
    var out = [Float]()
    out.reserveCapacity(selection.rows.count * selection.columns.count)
    for i in selection.rows { for j in selection.columns { out.append(matrix[i * C + j]) } }
    return out
}

/// LoRA factors of a matrix by truncated SVD: W ≈ B·A with B = U_r·Σ_r (`[out, r]`) and A = V_rᵀ
/// (`[r, in]`), as the release factorises the extracted teacher matrices. Also returns the
/// Frobenius norm of what the truncation dropped (√Σ_{i>r} σᵢ²).
public func loraFactors(_ w: [Float], rows m: Int, columns n: Int, rank r: Int, name: String = "matrix") throws -> (b: [Float], a: [Float], residual: Double) {
    guard r >= 1, r <= min(m, n) else { throw TransferError.rankTooLarge(tensor: name, rank: r, shape: [m, n]) }
    let k = min(m, n)
    let (u, s, vt) = try BLAS.svd(w, rows: m, cols: n)
    var b = [Float](repeating: 0, count: m * r)
    for i in 0..<m { for j in 0..<r { b[i * r + j] = u[i * k + j] * s[j] } }
    let a = Array(vt[0..<(r * n)])
    let residual = s[r...].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    return (b, a, residual)
}
