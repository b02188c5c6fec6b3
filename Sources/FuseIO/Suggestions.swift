/// "Did you mean": the closest candidate to `word` by edit distance (case-insensitive), if it is close
/// enough to be a likely typo. Every spec reader (merge, evolve, distill, transfer) uses this one.
public func didYouMean(_ word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    let limit = max(2, word.count / 3)
    return best.1 <= limit ? best.0 : nil
}

/// Levenshtein distance with '-' and '_' treated as the same character (a common YAML typo).
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.replacingOccurrences(of: "-", with: "_")), y = Array(b.replacingOccurrences(of: "-", with: "_"))
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var previous = Array(0...y.count)
    var current = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        current[0] = i
        for j in 1...y.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[y.count]
}
