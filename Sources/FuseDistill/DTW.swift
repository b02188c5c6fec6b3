// Sequence alignment of two tokenizations of one text, as FuseLLM's release does it
// (`FuseLLM/src/utils/others.py::dtw`, after talcs/simpledtw): dynamic time warping over the two
// token sequences with the Levenshtein distance of the marker-stripped token strings as local cost.
//
// Cumulative cost D[i][j] = cost(i, j) + min(D[i-1][j], D[i][j-1], D[i-1][j-1]), D[-1][-1] = 0 and
// the rest of row/column -1 infinite. The path is traced back from the last cell; at each step the
// release takes numpy's argmin of [diagonal, up (i-1), left (j-1)], so ties prefer the diagonal, then
// up. Every cell on the path maps source position i to target position j, which gives one-to-many
// alignments in both directions.

/// Levenshtein distance (unit costs) between two scalar arrays, as `editdistance.eval` on str: the
/// bounded search with a bound no distance can exceed.
public func editDistance(_ a: [UInt32], _ b: [UInt32]) -> Int {
    a == b ? 0 : editDistance(a, b, bound: max(a.count, b.count))
}

/// The Levenshtein distance when it is at most `bound`, else any value above `bound` (rows stop as
/// soon as every entry exceeds it). Used by the MinED vocabulary search.
public func editDistance(_ a: [UInt32], _ b: [UInt32], bound: Int) -> Int {
    if abs(a.count - b.count) > bound { return bound + 1 }
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    let m = b.count
    return withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * (m + 1)) { buf in
        var prev = buf.baseAddress!, cur = buf.baseAddress! + (m + 1) // invariant: capacity ≥ 2
        for j in 0...m { prev[j] = j }
        for i in 1...a.count {
            cur[0] = i
            var rowMin = i
            let ai = a[i - 1]
            for j in 1...m {
                let v = min(prev[j - 1] + (ai == b[j - 1] ? 0 : 1), min(prev[j], cur[j - 1]) + 1)
                cur[j] = v
                rowMin = min(rowMin, v)
            }
            if rowMin > bound { return bound + 1 }
            swap(&prev, &cur)
        }
        return prev[m]
    }
}

/// The DTW result: for each target position the source positions aligned to it (ascending), and the
/// total path cost.
public struct DTWAlignment: Equatable, Sendable {
    public var targetToSource: [[Int]]
    public var sourceToTarget: [[Int]]
    public var cost: Int
}

/// DTW of `source` (the release's `series_1`, the blending model) against `target` (`series_2`, the
/// base model) with `cost(i, j)` as local distance. Both must be non-empty.
public func dynamicTimeWarping(sourceCount n: Int, targetCount m: Int, cost: (Int, Int) -> Int) -> DTWAlignment {
    precondition(n > 0 && m > 0, "DTW needs two non-empty sequences")   // invariant: the one caller skips empty sequences
    let inf = Int.max / 4
    // D is the release's matrix[1:, 1:]: row i, column j, row-major.
    var D = [Int](repeating: 0, count: n * m)
    for i in 0..<n {
        for j in 0..<m {
            let c = cost(i, j)
            let up = i > 0 ? D[(i - 1) * m + j] : (j == 0 ? 0 : inf)         // matrix[i, j+1]; matrix[0,0] = 0
            let left = j > 0 ? D[i * m + j - 1] : (i == 0 ? 0 : inf)          // matrix[i+1, j]
            let diag = i > 0 && j > 0 ? D[(i - 1) * m + j - 1] : (i == 0 && j == 0 ? 0 : inf)
            // At (0,0) the three options are matrix[0,1]=inf, matrix[1,0]=inf, matrix[0,0]=0.
            let best = i == 0 && j == 0 ? 0 : min(up, left, diag)
            D[i * m + j] = c + best
        }
    }
    var toSource = [[Int]](repeating: [], count: m)
    var toTarget = [[Int]](repeating: [], count: n)
    var i = n - 1, j = m - 1
    while i > 0 || j > 0 {
        toSource[j].append(i); toTarget[i].append(j)
        let diag = i > 0 && j > 0 ? D[(i - 1) * m + j - 1] : inf
        let up = i > 0 ? D[(i - 1) * m + j] : inf
        let left = j > 0 ? D[i * m + j - 1] : inf
        if diag <= up && diag <= left { i -= 1; j -= 1 } else if up <= left { i -= 1 } else { j -= 1 }
    }
    toSource[0].append(0); toTarget[0].append(0)
    for k in 0..<m { toSource[k].reverse() }
    for k in 0..<n { toTarget[k].reverse() }
    return DTWAlignment(targetToSource: toSource, sourceToTarget: toTarget, cost: D[n * m - 1])
}
